"""The one exception type of the data layer."""


class DataError(Exception):
    """Any problem with data on disk, its download or its contents.

    The message always names the file, folder or URL involved and says how to fix it.
    """
