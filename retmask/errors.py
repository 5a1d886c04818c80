"""The error users see: bad input, stated with what is wrong and what would be right."""


class UserError(ValueError):
    pass
