# Create/refresh .venv with the dev extras, then run the whole test suite (offscreen, CPU).
#   powershell -ExecutionPolicy Bypass -File installer\test.ps1 [pytest args]
# The Windows twin of test.sh (torch==2.13.0 in the same pip command, MAMA_TORCH_SPEC to
# override, HF_HUB_OFFLINE=1). UNTESTED here (no Windows machine).
$ErrorActionPreference = "Stop"
. (Join-Path $PSScriptRoot "setup_env.ps1") -Extras "dev"
Set-Location (Split-Path -Parent $PSScriptRoot)
if (-not $env:QT_QPA_PLATFORM) { $env:QT_QPA_PLATFORM = "offscreen" }
& python -m pytest @args
$rc = $LASTEXITCODE
# pytest exits 5 when no test was collected: that is a failure here, never a silent pass.
if ($rc -eq 5) { Write-Host "[mama] no tests were collected"; exit 1 }
exit $rc
