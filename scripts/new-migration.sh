#!/usr/bin/env bash
# Creates the next migration file under migrations/src and registers it in migrations/src/lib.rs
# (module and Migrator list). Usage: scripts/new-migration.sh add_widgets
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/new-migration.sh NAME (snake_case, e.g. add_widgets)}"
[[ "$name" =~ ^[a-z][a-z0-9_]*$ ]] || { echo "NAME must be snake_case: $name" >&2; exit 2; }
last=$(ls migrations/src | sed -n 's/^m[0-9]\{8\}_\([0-9]\{6\}\)_.*\.rs$/\1/p' | sort | tail -n1)
next=$(printf '%06d' $((10#${last:-0} + 1)))
module="m$(date -u +%Y%m%d)_${next}_${name}"
file="migrations/src/${module}.rs"
cat >"$file" <<RUST
//! ${name}: say what this migration adds and why, and name any tenant table it creates
//! (a tenant table is fenced by Row-Level Security: call \`fence\` and add it to TENANT_TABLES).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }

    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}
RUST
python3 - "$module" <<'PY'
import re, sys
module = sys.argv[1]
path = "migrations/src/lib.rs"
text = open(path).read()
mods = list(re.finditer(r"^mod m\d{8}_\d{6}_\w+;\n", text, re.M))
text = text[:mods[-1].end()] + f"mod {module};\n" + text[mods[-1].end():]
boxes = list(re.finditer(r"^(\s*)Box::new\(m\d{8}_\d{6}_\w+::Migration\),\n", text, re.M))
last = boxes[-1]
text = text[:last.end()] + f"{last.group(1)}Box::new({module}::Migration),\n" + text[last.end():]
open(path, "w").write(text)
PY
echo "created $file and registered it in migrations/src/lib.rs"
