#!/usr/bin/env python3
"""Code metrics for issue-style acceptance checks: functions longer than N lines and
`Result<_, String>` signatures in library code (not tests, benches, examples or the CLI).

Usage: python3 scripts/code_metrics.py [ROOT] [--max-lines 80] [--list]
A function's length is counted from its `fn` line to its closing brace (brace matching that
skips strings, chars and comments)."""
import os
import re
import sys

FN = re.compile(r'^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+"[^"]*"\s+)?fn\s+(\w+)')
def string_error_results(line):
    """How many `Result<T, String>` types the line names (the error argument at depth one)."""
    count, start = 0, 0
    while True:
        at = line.find('Result<', start)
        if at < 0:
            return count
        depth, args, arg = 0, [], ''
        for ch in line[at + len('Result<'):]:
            if ch in '<([':
                depth += 1
            elif ch in '>)]':
                if depth == 0:
                    args.append(arg.strip())
                    break
                depth -= 1
            elif ch == ',' and depth == 0:
                args.append(arg.strip()); arg = ''; continue
            arg += ch
        if len(args) == 2 and args[1] == 'String':
            count += 1
        start = at + 1


def library_files(root):
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ('target', '.git', 'tests', 'benches', 'examples', 'ui-tests', 'cli', 'node_modules') and not d.startswith('.')]
        for f in files:
            if f.endswith('.rs') and f != 'main.rs':
                yield os.path.join(base, f)


def strip_code(text):
    """Blank out comments, strings and char literals, keeping line structure."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith('//', i):
            j = text.find('\n', i)
            j = n if j < 0 else j
            out.append(' ' * (j - i)); i = j
        elif text.startswith('/*', i):
            j = text.find('*/', i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:j])); i = j
        elif c == 'r' and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == '_')):
            m = re.match(r'r(#*)"', text[i:]); hashes = m.group(1)
            end = text.find('"' + hashes, i + len(m.group(0)))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r'[^\n]', ' ', text[i:end])); i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == '\\' else 1
            out.append(re.sub(r'[^\n]', ' ', text[i:j + 1])); i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or text.startswith("'\\u{", i):
            j = text.find("'", i + 1)
            out.append(' ' * (j - i + 1)); i = j + 1
        else:
            out.append(c); i += 1
    return ''.join(out)


def long_functions(path, max_lines):
    code = strip_code(open(path, encoding='utf-8').read())
    lines = code.split('\n')
    found = []
    in_test = None
    for idx, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        # find the opening brace of the body (or a `;` for a declaration)
        depth, start, end = 0, None, None
        for j in range(idx, len(lines)):
            for ch in lines[j]:
                if start is None and ch == ';' and depth == 0:
                    end = -1; break
                if ch == '{':
                    if start is None:
                        start = j
                    depth += 1
                elif ch == '}' and start is not None:
                    depth -= 1
                    if depth == 0:
                        end = j; break
            if end is not None:
                break
        if end is None or end < 0:
            continue
        length = end - idx + 1
        if length > max_lines:
            found.append((path, idx + 1, m.group(1), length))
    return found


def in_test_module(path, lineno):
    text = open(path, encoding='utf-8').read().split('\n')
    for i in range(lineno - 1, -1, -1):
        if text[i].startswith('mod tests') or text[i].strip() == '#[cfg(test)]' and i + 1 < len(text) and 'mod ' in text[i + 1]:
            return True
    return False


def main():
    args = sys.argv[1:]
    root = '.'
    max_lines, listing = 80, '--list' in args
    if '--max-lines' in args:
        max_lines = int(args[args.index('--max-lines') + 1])
    rest = [a for a in args if not a.startswith('--') and not a.isdigit()]
    if rest:
        root = rest[0]
    longs, string_errs = [], []
    for path in sorted(library_files(root)):
        for f in long_functions(path, max_lines):
            if not in_test_module(path, f[1]):
                longs.append(f)
        code = strip_code(open(path, encoding='utf-8').read()).split('\n')
        for i, line in enumerate(code):
            if string_error_results(line) and not in_test_module(path, i + 1):
                string_errs.append((path, i + 1))
    print(f'functions over {max_lines} lines in library code: {len(longs)}')
    if listing:
        for p, l, name, n in sorted(longs, key=lambda x: -x[3]):
            print(f'  {n:4} {name} ({os.path.relpath(p, root)}:{l})')
    print(f'Result<_, String> in library code: {len(string_errs)}')
    if listing:
        for p, l in string_errs:
            print(f'  {os.path.relpath(p, root)}:{l}')


if __name__ == '__main__':
    main()
