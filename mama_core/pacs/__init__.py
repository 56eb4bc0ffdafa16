"""The hospital network: DICOMweb (QIDO-RS, WADO-RS, STOW-RS) and DIMSE (C-ECHO, C-FIND,
C-GET/C-MOVE, C-STORE) nodes, test connection, and retrieval into the local study cache.
See docs/pacs.md.
"""

from mama_core.pacs.connect import check_connection, open_connection, store_files
from mama_core.pacs.nodes import PacsNode, PacsSettings, add_node, load_settings, remove_node, save_settings
from mama_core.pacs.retrieve import RetrieveProgress, StudyRetrieval, find_priors, get_study, retrieve_study
from mama_core.pacs.types import ConnectionReport, PacsError, StudyInfo, StudyQuery

__all__ = [
    "ConnectionReport", "PacsError", "PacsNode", "PacsSettings", "RetrieveProgress", "StudyInfo", "StudyQuery",
    "StudyRetrieval", "add_node", "find_priors", "get_study", "load_settings", "open_connection", "remove_node",
    "retrieve_study", "save_settings", "store_files", "check_connection",
]


def find_studies(node: PacsNode, query: StudyQuery) -> list[StudyInfo]:
    """Search one node for studies."""
    with open_connection(node) as conn:
        return conn.find_studies(query)


__all__.append("find_studies")
