"""Errors the solver raises for bad input: one clear message naming the offending item."""


class ASMInputError(ValueError):
    """Bad input (template, mesh, arrays, settings). The message names the item and what to do."""


class TemplateError(ASMInputError):
    """The skeleton template file is invalid."""
