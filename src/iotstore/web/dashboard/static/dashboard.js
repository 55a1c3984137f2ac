// The dashboard's only script besides htmx: sign-out navigation, copy buttons, focus after swaps.
(function () {
  "use strict";
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt;
    if (elt && elt.id === "sign-out" && event.detail.successful) {
      window.location.href = "/sign-in";
    }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    source.select();
    if (navigator.clipboard) {
      navigator.clipboard.writeText(source.value).then(function () { button.textContent = "Copied"; });
    }
  });
  // after a form comes back with errors, put the keyboard on the first invalid field
  document.addEventListener("htmx:afterSwap", function (event) {
    var invalid = event.detail.target && event.detail.target.querySelector
      ? (event.detail.target.matches("[aria-invalid=true]") ? event.detail.target
         : document.querySelector("form [aria-invalid=true]"))
      : null;
    if (invalid) invalid.focus();
  });
})();
