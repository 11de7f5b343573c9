# Puts pgha's toolchain on PATH for this shell: `source scripts/env.sh`.
# Why: the Pulumi CLI, its Python language host and the project venv are built
# into the repo (.tools/, .venv/) by `make setup`, and state lives in a local
# file backend, so plain `pulumi up` works with no login and no cloud.
# Every value is a default you may override in your environment.

PGHA_ROOT=${PGHA_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)}
export PGHA_ROOT
export PATH="$PGHA_ROOT/.tools/bin:$PGHA_ROOT/.venv/bin:$PATH"
export PULUMI_HOME=${PULUMI_HOME:-$HOME/.pulumi}
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$PGHA_ROOT/.pulumi-state}
# Only for local dev and test stacks. Set your own for anything you care about.
pgha_dev_only_default=pgha-dev-stack-only
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-$pgha_dev_only_default}
unset pgha_dev_only_default
export PULUMI_SKIP_UPDATE_CHECK=${PULUMI_SKIP_UPDATE_CHECK:-true}
export PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=${PULUMI_DIY_BACKEND_NO_LEGACY_WARNING:-true}
mkdir -p "$PGHA_ROOT/.pulumi-state"
