"""Built-in sink formats (layouts). Each module holds one layout; ``BUILTINS`` lists them."""

BUILTINS: tuple = ()
