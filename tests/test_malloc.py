import subprocess
import sys


def test_tune_applies_on_glibc():
    # Run in a child: the settings are process-wide and must not leak into the test run.
    code = "from pyramidd import malloc; print(malloc.tune())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_libc_functions_come_from_the_process_itself():
    from pyramidd import libc

    assert libc.function("mallopt") is not None  # glibc, as the test above
    assert libc.function("no_such_function_in_any_libc") is None
