"""Export and import of conversations (and export of sessions): JSON, CSV, XML, Parquet."""

from app.data.transfer.exporter import ExportManager
from app.data.transfer.formats import ExportFormat, ImportCounts, MergeStrategy
from app.data.transfer.importer import ImportManager

__all__ = ["ExportFormat", "ExportManager", "ImportCounts", "ImportManager", "MergeStrategy"]
