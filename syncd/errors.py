"""The error taxonomy: each class says what the caller does next and which exit code it maps to.

Run-level errors (``Fatal``) stop the whole command with the contract's exit code.
Item-level errors stop one item: ``ItemFailed`` counts an attempt and retries on a later
pass with backoff; ``ItemSkipped`` parks the item until the configuration allows it.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""

    exit_code: int = 1


# --- run-level: stop the command -------------------------------------------------------


class Fatal(SyncdError):
    """Stops the command; nothing already recorded is lost."""


class ConfigError(Fatal):
    """Usage or configuration error; the message names the key (exit 2)."""

    exit_code = 2

    def __init__(self, message: str, key: str | None = None) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class AuthError(Fatal):
    """Credentials missing, unreadable or refused (exit 3). Never carries a secret."""

    exit_code = 3


class UpstreamUnreachable(Fatal):
    """The upstream API cannot be reached after retries (exit 3)."""

    exit_code = 3


class LockHeld(Fatal):
    """Another run holds the state lock (exit 4); the message names the holder."""

    exit_code = 4


class QuotaExhausted(Fatal):
    """An upstream quota stops the pass early (exit 5); state is saved, the next run goes on."""

    exit_code = 5


class Interrupted(Fatal):
    """A signal asked the run to stop; items in flight were finished or released (exit 0)."""

    exit_code = 0


# --- item-level: stop one item ----------------------------------------------------------


class ItemFailed(SyncdError):
    """This item failed this time; counts an attempt, retried on a later pass with backoff.

    ``final`` marks a failure that no automatic retry may repeat (it waits for ``syncd retry``).
    """

    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class TransientError(ItemFailed):
    """Network error, timeout, 5xx that outlived the per-request retries."""


class IntegrityError(ItemFailed):
    """Downloaded bytes do not match what was announced (length or checksum)."""


class DownloadRefused(ItemFailed):
    """The download URL was refused or has expired; a fresh URL is asked for."""


class DestinationError(ItemFailed):
    """A destination refused or failed to store an object."""


class OutcomeUnknown(ItemFailed):
    """A call that spends money got no clear answer (timeout, 5xx, dropped connection).

    Never repeated blindly: the outcome is reconciled against the license history first.
    """


class ItemDeferred(SyncdError):
    """Not a failure, not done: waiting for something outside syncd (a license to show up)."""


class ItemSkipped(SyncdError):
    """The configuration does not allow this item now (re-licensing off, budget reached).

    Reconsidered on every pass; proceeds as soon as the configuration allows, without retry.
    """
