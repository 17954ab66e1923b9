"""``cytoreg completion bash|zsh|tcsh``: a shell completion script (shtab, from the argparse parser).

    cytoreg completion bash > ~/.local/share/bash-completion/completions/cytoreg
    cytoreg completion zsh > ~/.zfunc/_cytoreg
"""
from __future__ import annotations

from cytoreg.errors import CytoregError


def cmd_completion(args) -> int:
    try:
        import shtab
    except ImportError:
        raise CytoregError("shell completion needs shtab: pip install 'cytoreg[completion]' (or pip install "
                           "shtab)") from None
    from cytoreg.cli import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0


def register(sub, common) -> None:
    p = sub.add_parser("completion", help="print a shell completion script (bash, zsh, tcsh)")
    p.add_argument("shell", choices=["bash", "zsh", "tcsh"])
    p.set_defaults(fn=cmd_completion)
