"""Conformance tests: iotstore against snapd's own code and the real snap command.

A package (not a plain test directory) so that the helper modules
``snapd`` and ``snapcli`` are imported relatively, under one unambiguous name.
"""
