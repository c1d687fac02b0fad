#!/usr/bin/env bash
# This operator's unit tests as a native program (weir_testing.c in place of weir), under
# AddressSanitizer and UBSan.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sdk=$here/../../../../guest-sdk/c
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
cc -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined -I "$sdk" "$here/detect.c" "$here/detect_test.c" "$sdk/weir.c" "$sdk/weir_testing.c" -o "$bin"
"$bin"
