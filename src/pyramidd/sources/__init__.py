"""Built-in source formats. Each module holds one format; ``BUILTINS`` lists them."""

BUILTINS: tuple = ()
