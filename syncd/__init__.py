"""syncd: keeps a DAM, CMS or object store in step with licensed stock media."""

__version__ = "0.1.0"
USER_AGENT = f"syncd/{__version__} (+https://github.com/syncd)"
