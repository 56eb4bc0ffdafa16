# Shared by run.ps1 and test.ps1 (Windows PowerShell 5.1 / PowerShell 7): create or refresh
# .venv only when the inputs changed. Dot-source it:  . "$PSScriptRoot\setup_env.ps1" -Extras dev
# The PowerShell twin of setup_env.sh + torch_spec.sh. UNTESTED here (no Windows machine).
param([string]$Extras = "")
$ErrorActionPreference = "Stop"

$Root = Split-Path -Parent $PSScriptRoot
$Venv = if ($env:MAMA_VENV) { $env:MAMA_VENV } else { Join-Path $Root ".venv" }
$VenvPython = Join-Path $Venv "Scripts\python.exe"

# torch: the pin gets the CUDA build on an NVIDIA machine through the PyTorch CUDA index and
# the CPU build elsewhere (PyPI's Windows wheel is CPU-only). MAMA_TORCH_SPEC overrides.
$TorchPin = "torch==2.13.0"
$TorchSpec = $TorchPin
$TorchIndex = @()
if ($env:MAMA_TORCH_SPEC) {
    $TorchSpec = $env:MAMA_TORCH_SPEC
} elseif ((Get-Command nvidia-smi -ErrorAction SilentlyContinue) -and (& nvidia-smi -L 2>$null)) {
    $TorchIndex = @("--extra-index-url", "https://download.pytorch.org/whl/cu128")
}

function Find-Python311 {
    if ($env:MAMA_PYTHON) { return @($env:MAMA_PYTHON) }
    if (Get-Command py -ErrorAction SilentlyContinue) { return @("py", "-3.11") }
    return @("python")
}

$Target = if ($Extras) { ".[$Extras]" } else { "." }
$StampInput = (Get-Content (Join-Path $Root "pyproject.toml") -Raw) + "$TorchSpec $TorchIndex $Extras"
$Sha = [System.Security.Cryptography.SHA256]::Create()
$Stamp = -join ($Sha.ComputeHash([Text.Encoding]::UTF8.GetBytes($StampInput))[0..7] | ForEach-Object { $_.ToString("x2") })
$StampName = if ($Extras) { $Extras } else { "base" }
$StampFile = Join-Path $Venv ".mama-stamp-$StampName"

if (-not (Test-Path $VenvPython)) {
    $py = Find-Python311
    Write-Host "[mama] creating $Venv with $($py -join ' ')"
    $pyArgs = @($py | Select-Object -Skip 1)
    & $py[0] @pyArgs -m venv $Venv
    if ($LASTEXITCODE -ne 0) { throw "could not create $Venv (is Python 3.11 installed?)" }
}
if (-not (Test-Path $StampFile) -or ((Get-Content $StampFile -Raw).Trim() -ne $Stamp)) {
    Write-Host "[mama] installing packages into $Venv (torch: $TorchSpec)"
    # torch goes in the same pip command as the rest, so nothing pulls a different build.
    Push-Location $Root
    try {
        & $VenvPython -m pip install -q --disable-pip-version-check @TorchIndex $TorchSpec -e $Target
        if ($LASTEXITCODE -ne 0) { throw "pip install failed ($LASTEXITCODE)" }
    } finally { Pop-Location }
    Remove-Item (Join-Path $Venv ".mama-stamp-*") -ErrorAction SilentlyContinue
    Set-Content -Path $StampFile -Value $Stamp
}
$env:PATH = (Join-Path $Venv "Scripts") + [IO.Path]::PathSeparator + $env:PATH
# Nothing may download weights or data at run time (docs/method.md §7).
$env:HF_HUB_OFFLINE = "1"; $env:TRANSFORMERS_OFFLINE = "1"; $env:HF_DATASETS_OFFLINE = "1"
