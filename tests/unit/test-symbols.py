#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check that libvshm exports exactly the symbols listed in libvshm.sym, and
that every listed symbol is declared in a public header."""
import glob
import re
import subprocess
import sys

lib, symfile, incdir = sys.argv[1:4]

listed = set()
in_global = False
for line in open(symfile):
    line = re.sub(r'/\*.*?\*/', '', line).strip()
    if line.startswith('global:'):
        in_global = True
        continue
    if line.startswith('local:'):
        in_global = False
        continue
    if in_global and line.endswith(';'):
        listed.add(line[:-1].strip())

out = subprocess.run(['nm', '-D', '--defined-only', lib], check=True,
                     capture_output=True, text=True).stdout
exported = set()
for line in out.splitlines():
    parts = line.split()
    if len(parts) >= 3 and parts[1] in 'TDBRVW':
        name = parts[2].split('@')[0]
        if name.startswith('VSHM_'):
            continue  # the version node itself
        exported.add(name)

declared = set()
for h in glob.glob(incdir + '/*.h'):
    text = re.sub(r'/\*.*?\*/', '', open(h).read(), flags=re.S)
    declared.update(re.findall(r'\b(vshm_[a-z0-9_]+)\s*\(', text))

ok = True
for name in sorted(exported - listed):
    print(f'exported but not listed in libvshm.sym: {name}')
    ok = False
for name in sorted(listed - exported):
    print(f'listed in libvshm.sym but not exported: {name}')
    ok = False
for name in sorted(listed - declared):
    print(f'listed but not declared in a public header: {name}')
    ok = False
print(f'{len(exported)} exported, {len(listed)} listed')
sys.exit(0 if ok else 1)
