"""`mama pacs add|list|remove|echo|find|get|store|set`: PACS nodes, search, retrieve, send."""

from __future__ import annotations

import argparse
import sys

from mama_core.commands._output import print_json, print_table

NAME = "pacs"
HELP = "PACS nodes (DICOMweb or DIMSE): add, list, remove, echo, find, get (with priors), priors, store, set"


def _sub(subs, name: str, help_text: str) -> argparse.ArgumentParser:
    p = subs.add_parser(name, help=help_text, description=help_text)
    # Also accepted after the sub-command; SUPPRESS keeps a `mama pacs --json ...` given earlier.
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output (JSON)")
    return p


def _add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="a short name for the node (letters, digits, . _ -)")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--dicomweb", metavar="URL", help="DICOMweb base URL, e.g. https://pacs/dicom-web")
    kind.add_argument("--aet", help="DIMSE: the PACS's AE title")
    p.add_argument("--auth", help="DICOMweb: basic:USER:PASSWORD or bearer:TOKEN; PASSWORD/TOKEN may be "
                                  "env:VAR to read it from an environment variable at use time")
    p.add_argument("--ca-file", help="DICOMweb over https: CA bundle that signed the server's certificate")
    p.add_argument("--host", help="DIMSE: host name or address")
    p.add_argument("--port", type=int, help="DIMSE: port")
    p.add_argument("--calling-aet", default="MAMA", help="DIMSE: our AE title (default MAMA)")
    p.add_argument("--retrieve", choices=("get", "move"), default="get",
                   help="DIMSE retrieve with C-GET (default) or C-MOVE to our own storage SCP")
    p.add_argument("--move-port", type=int, default=11113, help="DIMSE C-MOVE: port our SCP listens on")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a silent server is given up")
    p.add_argument("--replace", action="store_true", help="replace a node of the same name")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    subs = parser.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    _add_args(_sub(subs, "add", "add a node"))
    _sub(subs, "list", "list the nodes (secrets are never shown)")
    _sub(subs, "remove", "remove a node").add_argument("name")
    echo = _sub(subs, "echo", "test the connection: DNS, TCP, TLS, association/auth, C-ECHO or QIDO")
    echo.add_argument("name", nargs="?", help="node name (or --server)")
    echo.add_argument("--server")
    find = _sub(subs, "find", "search a node for studies")
    find.add_argument("--server", required=True)
    find.add_argument("--patient", help="Patient ID")
    find.add_argument("--date", help="YYYYMMDD or YYYYMMDD-YYYYMMDD (either end may be open)")
    find.add_argument("--accession", help="Accession number")
    find.add_argument("--modality", default="MG", help="modality in study (default MG; 'any' for all)")
    get = _sub(subs, "get", "retrieve a study's mammograms into the local study cache")
    get.add_argument("--server", required=True)
    get.add_argument("--study", required=True, help="StudyInstanceUID")
    get.add_argument("--priors", action="store_true", default=None, help="also fetch the patient's earlier studies "
                                                                          "(default: the auto-priors setting)")
    get.add_argument("--no-priors", dest="priors", action="store_false")
    priors = _sub(subs, "priors", "list the earlier mammography studies of a study's patient (fetch with get)")
    priors.add_argument("--server", required=True)
    priors.add_argument("--study", required=True, help="StudyInstanceUID")
    store = _sub(subs, "store", "send DICOM files (e.g. `mama report` output) to a node")
    store.add_argument("--server", required=True)
    store.add_argument("files", nargs="+")
    setting = _sub(subs, "set", "PACS preferences")
    setting.add_argument("--auto-priors", choices=("on", "off"), required=True,
                         help="fetch every prior of the patient with each study")


def _parse_auth(text: str | None) -> dict:
    from mama_core.errors import ConfigError

    if not text:
        return {"auth": "none"}
    kind, _, rest = text.partition(":")
    if kind == "bearer" and rest:
        return {"auth": "bearer", "secret": rest}
    user, _, secret = rest.partition(":")
    if kind == "basic" and user and secret:
        return {"auth": "basic", "username": user, "secret": secret}
    raise ConfigError("--auth must be basic:USER:PASSWORD or bearer:TOKEN", field="auth")


def _node_from_args(args):
    from mama_core.pacs import PacsNode

    if args.dicomweb:
        return PacsNode(args.name, "dicomweb", url=args.dicomweb, ca_file=args.ca_file, timeout_s=args.timeout,
                        **_parse_auth(args.auth))
    return PacsNode(args.name, "dimse", aet=args.aet, host=args.host, port=args.port, calling_aet=args.calling_aet,
                    retrieve=args.retrieve, move_port=args.move_port, timeout_s=args.timeout)


def _add(args) -> int:
    from mama_core.pacs import add_node

    node = _node_from_args(args)
    add_node(node, replace=args.replace)
    print_json(node.public()) if args.json else print(f"added {node.name}: {node.describe()}")
    return 0


def _list(args) -> int:
    from mama_core.pacs import load_settings

    settings = load_settings()
    if args.json:
        print_json({"nodes": [n.public() for n in settings.nodes.values()], "auto_priors": settings.auto_priors})
        return 0
    rows = [(n.name, n.kind, n.describe(), n.auth if n.kind == "dicomweb" else n.retrieve) for n in settings.nodes.values()]
    print_table(["name", "kind", "address", "auth / retrieve"], rows)
    print(f"\nauto priors: {'on' if settings.auto_priors else 'off'}")
    return 0


def _remove(args) -> int:
    from mama_core.pacs import remove_node

    remove_node(args.name)
    print_json({"removed": args.name}) if args.json else print(f"removed {args.name}")
    return 0


def _echo(args) -> int:
    from mama_core.errors import ConfigError
    from mama_core.pacs import check_connection, load_settings

    name = args.server or args.name
    if not name:
        raise ConfigError("which node? give its name or --server", field="server")
    report = check_connection(load_settings().node(name))
    if args.json:
        print_json(report.to_json())
    else:
        state = "OK" if report.ok else f"FAILED at {report.stage}"
        print(f"{report.node}: {state} ({report.seconds * 1000:.0f} ms): {report.message}")
    return 0 if report.ok else 3


def _find(args) -> int:
    from mama_core.pacs import StudyQuery, find_studies, load_settings

    modality = None if (args.modality or "").lower() in ("", "any") else args.modality
    query = StudyQuery(patient_id=args.patient, date=args.date, accession=args.accession, modality=modality)
    studies = find_studies(load_settings().node(args.server), query)
    if args.json:
        print_json([s.to_json() for s in studies])
        return 0
    rows = [(s.study_uid, s.patient_id or "-", s.date or "-", s.accession or "-", "/".join(s.modalities) or "-",
             s.n_images if s.n_images is not None else "-") for s in studies]
    print_table(["study", "patient", "date", "accession", "modalities", "images"], rows)
    print(f"\n{len(studies)} studies")
    return 0


def _progress(report) -> None:
    state = "done" if report.finished else ("cancelled" if report.cancelled else "")
    print(f"  {report.study_uid}: {report.done}/{report.total} ({report.fetched} fetched, "
          f"{report.already_local} already local) {state}".rstrip(), file=sys.stderr, flush=True)


def _get(args) -> int:
    from mama_core.pacs import get_study, load_settings

    result = get_study(load_settings().node(args.server), args.study, priors=args.priors, progress=_progress)
    if args.json:
        print_json(result.to_json())
        return 0
    print(f"study {result.study.study_uid} ({result.study.date or 'no date'}) -> {result.folder}")
    for info, folder in result.priors:
        print(f"  prior {info.study_uid} ({info.date or 'no date'}) -> {folder}")
    return 0


def _priors(args) -> int:
    from mama_core.pacs import find_priors, load_settings, open_connection
    from mama_core.pacs.retrieve import lookup_study

    with open_connection(load_settings().node(args.server)) as conn:
        found = find_priors(conn, lookup_study(conn, args.study))
    if args.json:
        print_json([s.to_json() for s in found])
        return 0
    print_table(["prior study", "date", "images"], [(s.study_uid, s.date or "-", s.n_images or "-") for s in found])
    return 0


def _store(args) -> int:
    from mama_core.pacs import load_settings, store_files

    result = store_files(load_settings().node(args.server), args.files)
    print_json(result) if args.json else print(f"stored {len(result['stored'])} objects on {args.server}")
    return 0


def _set(args) -> int:
    from mama_core.pacs import load_settings, save_settings

    settings = load_settings()
    settings.auto_priors = args.auto_priors == "on"
    save_settings(settings)
    print_json({"auto_priors": settings.auto_priors}) if args.json else print(f"auto priors: {args.auto_priors}")
    return 0


ACTIONS = {"add": _add, "list": _list, "remove": _remove, "echo": _echo, "find": _find, "get": _get,
           "priors": _priors, "store": _store, "set": _set}


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.pacs_command](args)
