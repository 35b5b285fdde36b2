#!/usr/bin/env python3
"""Turn a copy of config/ into the queue test's configuration, in place.

Usage: queue_config.py CONFIG_DIR OPERATORS WRAP_UP_S TRUNK_PORT

- operators.toml: operators op1..opOPERATORS (password `opN-secret`), each
  with the skill `benefits` (level 1 where it was missing; op7 and up are
  added with `skills = { benefits = 1 }`). The shipped operators keep their
  other skills and levels. Two more for the transfer and callback checks:
  op(OPERATORS+1) with `benefits` only and op(OPERATORS+2) with `home-care`
  only.
- queues.toml: `home-care` offers a callback after 5 s of waiting (shipped:
  180 s).
- hotline.toml: the trunk `local-test` places calls (callbacks) to
  `sip:127.0.0.1:TRUNK_PORT`, where the test's SIPp trunk end answers.
- queues.toml: the `benefits` queue's `wrap_up_seconds` becomes WRAP_UP_S
  (the shipped 30 s would make five calls per operator take minutes); its
  strategy and everything else stay as shipped.
- hotline.toml: `sip.digest_algorithms = ["MD5"]` (the shipped default,
  asserted here so a change to it cannot silently lock baresip out: baresip
  1.0.0 gives up on a 401 that offers SHA-256 next to MD5, libre failing the
  whole challenge with ENOSYS, "Register: Function not implemented").
- lines.toml: the city line records every call (`record = true`): the
  recording's right channel is what the daemon sent the caller, which while
  bridged is the operator's phone echoing the caller (queue_check.py).

Prints the benefits queue's strategy (what queue_check.py then checks).
"""
import re
import sys
import tomllib


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    folder, count, wrap_up = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    trunk_port = int(sys.argv[4])

    path = f"{folder}/operators.toml"
    text = open(path, encoding="utf-8").read()
    blocks = re.split(r"(?m)^(?=\[\[operator\]\])", text)
    out, seen = [], set()
    for block in blocks:
        login = re.search(r'(?m)^login\s*=\s*"([^"]+)"', block)
        if login:
            seen.add(login.group(1))
            if not re.search(r"(?m)^skills\s*=\s*\{[^}]*\bbenefits\s*=", block):
                block = re.sub(r"(?m)^skills\s*=\s*\{", "skills = { benefits = 1,", block, count=1)
        out.append(block)
    text = "".join(out).rstrip("\n") + "\n"
    for n in range(1, count + 1):
        login = f"op{n}"
        if login not in seen:
            text += (
                f'\n[[operator]]\nlogin = "{login}"\nname = "Оператор {n} (тест)"\n'
                f'password = "{login}-secret"\nskills = {{ benefits = 1 }}\n'
            )
    for n, queue in ((count + 1, "benefits"), (count + 2, "home-care")):
        text += (
            f'\n[[operator]]\nlogin = "op{n}"\nname = "Оператор {n} (тест, {queue})"\n'
            f'password = "op{n}-secret"\nskills = {{ {queue} = 1 }}\n'
        )
    open(path, "w", encoding="utf-8").write(text)
    ops = tomllib.loads(text)["operator"]
    with_benefits = [o["login"] for o in ops if "benefits" in o.get("skills", {})]
    if len(with_benefits) < count:
        print(f"only {len(with_benefits)} operators take benefits", file=sys.stderr)
        return 1

    path = f"{folder}/queues.toml"
    text = open(path, encoding="utf-8").read()
    blocks = re.split(r"(?m)^(?=\[\[queue\]\])", text)
    for i, block in enumerate(blocks):
        if re.search(r'(?m)^name\s*=\s*"benefits"', block):
            if re.search(r"(?m)^wrap_up_seconds\s*=", block):
                block = re.sub(r"(?m)^wrap_up_seconds\s*=\s*\d+", f"wrap_up_seconds = {wrap_up}", block)
            else:
                block = block.rstrip("\n") + f"\nwrap_up_seconds = {wrap_up}\n\n"
            blocks[i] = block
        if re.search(r'(?m)^name\s*=\s*"home-care"', block):
            blocks[i] = re.sub(
                r"(?m)^callback_after_seconds\s*=\s*\d+", "callback_after_seconds = 5", blocks[i]
            )
    text = "".join(blocks)
    open(path, "w", encoding="utf-8").write(text)
    home = next(q for q in tomllib.loads(text)["queue"] if q["name"] == "home-care")
    if home.get("callback_after_seconds") != 5:
        print("could not set the callback offer of home-care", file=sys.stderr)
        return 1
    queue = next(q for q in tomllib.loads(text)["queue"] if q["name"] == "benefits")
    if queue.get("wrap_up_seconds") != wrap_up:
        print("could not set the wrap-up of benefits", file=sys.stderr)
        return 1

    path = f"{folder}/lines.toml"
    text = open(path, encoding="utf-8").read()
    blocks = re.split(r"(?m)^(?=\[\[line\]\])", text)
    for i, block in enumerate(blocks):
        if re.search(r'(?m)^id\s*=\s*"city"', block):
            blocks[i] = re.sub(r"(?m)^record\s*=\s*false", "record = true", block)
    text = "".join(blocks)
    open(path, "w", encoding="utf-8").write(text)
    city = next(l for l in tomllib.loads(text)["line"] if l["id"] == "city")
    if city.get("record") is not True:
        print("could not turn on recording for the city line", file=sys.stderr)
        return 1

    path = f"{folder}/hotline.toml"
    text = open(path, encoding="utf-8").read()
    text, n = re.subn(r"(?m)^digest_algorithms\s*=.*$", 'digest_algorithms = ["MD5"]', text)
    if n != 1:
        print("could not set sip.digest_algorithms", file=sys.stderr)
        return 1
    text, n = re.subn(
        r'(?m)^(name = "local-test"\n)', f'\\1outbound = "sip:127.0.0.1:{trunk_port}"\n', text
    )
    if n != 1:
        print("could not give the trunk an outbound target", file=sys.stderr)
        return 1
    open(path, "w", encoding="utf-8").write(text)
    if tomllib.loads(text)["sip"]["digest_algorithms"] != ["MD5"]:
        print("could not set sip.digest_algorithms", file=sys.stderr)
        return 1

    print(queue.get("strategy", "longest-idle"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
