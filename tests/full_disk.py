"""A file whose writes fail as on a full disk, for the full-disk tests of the library and
the app (filling a real disk is not something a test run may do to its machine)."""

import errno


class FullDiskFile:
    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass

    def close(self):
        pass
