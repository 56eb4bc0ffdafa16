# Create/refresh .venv when needed, then start the desktop app with the given arguments.
#   powershell -ExecutionPolicy Bypass -File installer\run.ps1 --demo
# The Windows twin of run.sh (torch==2.13.0 in the same pip command, MAMA_TORCH_SPEC to
# override, HF_HUB_OFFLINE=1). UNTESTED here (no Windows machine).
$ErrorActionPreference = "Stop"
. (Join-Path $PSScriptRoot "setup_env.ps1") -Extras ""
& mama-desktop @args
exit $LASTEXITCODE
