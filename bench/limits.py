"""Open-file limits: every connection is a descriptor on both ends."""

import resource


def raise_open_files_limit(needed=None):
    """Raise the soft RLIMIT_NOFILE (to the hard limit, or to `needed`); returns the new soft limit.

    Children inherit it, so the servers the bench starts get it too.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if needed is not None:
        target = min(target, max(soft, needed))
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
