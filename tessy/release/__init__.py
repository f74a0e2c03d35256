"""Release assembly: Parquet export with a content hash, the dataset card, Hub publishing."""

from tessy.release.card import CardInfo, card_markdown, render_card, write_card
from tessy.release.export import Export, ReleaseWriter, content_hash, export_release
from tessy.release.publish import PublishError, PublishResult, check_folder, publish

__all__ = [
    "CardInfo",
    "card_markdown",
    "Export",
    "PublishError",
    "PublishResult",
    "ReleaseWriter",
    "check_folder",
    "content_hash",
    "export_release",
    "publish",
    "render_card",
    "write_card",
]
