#!/usr/bin/env bash
# {{name}}'s unit tests as a native program, under AddressSanitizer and UBSan.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
cc -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined -I "$here/weir" "$here/{{module}}.c" "$here/{{module}}_test.c" "$here/weir/weir.c" "$here/weir/weir_testing.c" -o "$bin"
"$bin"
