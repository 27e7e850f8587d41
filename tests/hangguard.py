"""How long a test waits for something: a hang guard, never a speed check (imports nothing)."""


def hang_guard(idle_seconds):
    """The timeout of a wait in a test: 10x what the wait takes on two idle cores, so the suite
    passes on a busy machine (load 5-6 on 2 cores) and a real hang still fails instead of blocking."""
    return 10 * idle_seconds
