#!/usr/bin/env python3
"""Hostile SSH clients for Shiftkey's end-to-end tests.

Each scenario drives the bastion with sequences OpenSSH never sends and
prints one JSON object on stdout saying what the client saw; the Rust tests
(tests/tests/e2e/hostile.rs) decide from that, from the target and from the
CA's records whether the bastion held. Built on asyncssh, an SSH
implementation independent of both OpenSSH and russh. Raw channel requests
use asyncssh's channel internals (`_open`, `_send_request`,
`_make_request`), which is why scripts/test pins the asyncssh version.

Scenarios:
  sequence  one session channel, then the steps in order (requests, typed
            input, pauses); every reply, the output and who closed
  sessions  hold up to N session channels open at once on one connection
  flood     open and close N session channels one after the other, then
            type into one more
  logins    N connections (C at a time), each trying the given key A times
  preauth   hold N connections that never authenticate, then try one more
  forward   open a direct-tcpip channel (what `ssh -L` asks for) to each
            destination in turn; whether it opened and what came back
  chunks    exec a command, then send it N writes of seeded random bytes,
            small (1-512) and large (up to 64 KiB) mixed, without waiting
            between most of them; digests of what was sent and echoed back
  stall     exec a command and stop reading its output while writing N
            small chunks, then read again: both directions full at once,
            as rsync or a paused pipe makes them; digests as for chunks
  upload    exec a command, send it N seeded random bytes, then EOF and
            close at once, without waiting for anything: digest of what
            was sent (the test compares what the command stored)
  overrun   exec a command that reads nothing and send it N bytes as raw
            CHANNEL_DATA packets, ignoring the window the server gives;
            whether and when the server cut the connection
"""

import argparse
import asyncio
import codecs
import hashlib
import json
import sys
import random
import time
import warnings

warnings.filterwarnings("ignore")

try:
    import asyncssh
    from asyncssh.channel import SSHClientChannel
    from asyncssh.constants import MSG_CHANNEL_DATA
    from asyncssh.packet import String, UInt32
except ImportError:
    sys.exit(
        "hostile.py: asyncssh is missing: install it with "
        "`python3 -m pip install asyncssh` (scripts/test does)"
    )

WINDOW = 2 * 1024 * 1024
PACKET = 32768


class Collector(asyncssh.SSHClientSession):
    """Everything the server sends on one channel."""

    def __init__(self):
        self.out = bytearray()
        self.err = bytearray()
        self.exit_status = None
        self.closed = asyncio.Event()

    def data_received(self, data, datatype):
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.err.extend(data)
        else:
            self.out.extend(data)

    def exit_status_received(self, status):
        self.exit_status = status

    def connection_lost(self, exc):
        self.closed.set()


async def connect(args, attempts=1):
    # A key given n times is offered n times: n authentication attempts on
    # one connection (each refusal costs the server's rejection delay).
    pairs = asyncssh.load_keypairs([(args.key, args.cert)] if args.cert else [args.key])
    if args.cert:
        # asyncssh also offers the key without its certificate: not here.
        pairs = [p for p in pairs if b"-cert-" in p.algorithm]
    keys = pairs * attempts
    return await asyncssh.connect(
        args.host,
        args.port,
        username=args.user,
        client_keys=keys,
        known_hosts=args.known_hosts,
        agent_path=None,
        config=[],
        preferred_auth="publickey",
        # Generous: a busy machine slows the handshakes, not the verdicts.
        connect_timeout=60,
        login_timeout=120,
    )


async def raw_channel(conn):
    """A session channel with no request sent yet."""
    chan = SSHClientChannel(
        conn, asyncio.get_running_loop(), "strict", None, "strict", WINDOW, PACKET
    )
    packet = await chan._open(b"session")
    packet.check_end()
    session = Collector()
    chan._session = session
    session.connection_made(chan)
    # What asyncssh's own session setup does last: deliver what arrives.
    await chan._start_reading()
    return chan, session


def parse_step(step):
    """`kind[:arg][!reply|!noreply]` -> (kind, arg, want_reply)."""
    want = None
    if step.endswith("!noreply"):
        step, want = step[: -len("!noreply")], False
    elif step.endswith("!reply"):
        step, want = step[: -len("!reply")], True
    kind, _, arg = step.partition(":")
    return kind, arg, want


def request_of(kind, arg):
    """The request name, its fields, and whether it asks a reply by default."""
    if kind == "pty":
        modes = b"\x00"
        return b"pty-req", [String("xterm"), UInt32(80), UInt32(24), UInt32(0), UInt32(0), String(modes)], True
    if kind == "shell":
        return b"shell", [], True
    if kind == "exec":
        return b"exec", [String(arg)], True
    if kind == "subsystem":
        return b"subsystem", [String(arg or "sftp")], True
    if kind == "env":
        name, _, value = arg.partition("=")
        return b"env", [String(name), String(value)], True
    if kind == "window-change":
        cols, _, rows = (arg or "100x30").partition("x")
        return b"window-change", [UInt32(int(cols)), UInt32(int(rows)), UInt32(0), UInt32(0)], False
    if kind == "signal":
        return b"signal", [String(arg or "INT")], False
    if kind == "break":
        return b"break", [UInt32(int(arg or "0"))], True
    if kind == "x11":
        return b"x11-req", [b"\x00", String("MIT-MAGIC-COOKIE-1"), String("00" * 16), UInt32(0)], True
    if kind == "agent":
        return b"auth-agent-req@openssh.com", [], True
    raise SystemExit(f"hostile.py: unknown step {kind!r}")


async def ask(chan, session, name, fields, want_reply, timeout):
    if not want_reply:
        chan._send_request(name, *fields)
        return "not-asked"
    if session.closed.is_set():
        return "channel-closed"
    try:
        ok = await asyncio.wait_for(chan._make_request(name, *fields), timeout)
    except asyncio.TimeoutError:
        return "no-answer"
    except (asyncio.CancelledError, asyncssh.Error, OSError):
        return "channel-closed"
    return "success" if ok else "failure"


def text(data):
    return bytes(data).decode("utf-8", "replace")


async def sequence(args):
    conn = await connect(args)
    chan, session = await raw_channel(conn)
    replies = []
    closed_by_server = False
    for step in args.step:
        kind, arg, want = parse_step(step)
        if session.closed.is_set():
            closed_by_server = True
        if kind == "sleep":
            await asyncio.sleep(float(arg))
            continue
        if kind == "type":
            if session.closed.is_set():
                replies.append([step, "channel-closed"])
                continue
            chan.write(codecs.decode(arg, "unicode_escape").encode("latin-1"))
            replies.append([step, "sent"])
            continue
        if kind == "eof":
            chan.write_eof()
            continue
        name, fields, default_reply = request_of(kind, arg)
        want_reply = default_reply if want is None else want
        replies.append([step, await ask(chan, session, name, fields, want_reply, args.timeout)])
    # Let the server finish: a channel it closes closes here too.
    if await closed_within(session, args.linger):
        closed_by_server = True
    chan.close()
    conn.close()
    print(json.dumps({
        "replies": replies,
        "closed_by_server": closed_by_server,
        "stdout": text(session.out),
        "stderr": text(session.err),
        "exit_status": session.exit_status,
    }))


async def sessions(args):
    conn = await connect(args)
    held, errors = [], []
    for _ in range(args.count):
        try:
            held.append(await asyncio.wait_for(raw_channel(conn), args.timeout))
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as e:
            errors.append(str(e) or type(e).__name__)
    # Still open after a moment (not opened and then closed by the server)?
    await asyncio.sleep(1.0)
    still_open = sum(1 for _, s in held if not s.closed.is_set())
    for chan, _ in held:
        chan.close()
    conn.close()
    print(json.dumps({
        "opened": len(held),
        "still_open": still_open,
        "refused": len(errors),
        "errors": sorted(set(errors))[:5],
    }))


async def flood(args):
    conn = await connect(args)
    opened, refused, errors = 0, 0, set()
    started = time.monotonic()
    for _ in range(args.count):
        try:
            chan, session = await asyncio.wait_for(raw_channel(conn), args.timeout)
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as e:
            refused += 1
            errors.add(str(e) or type(e).__name__)
            continue
        opened += 1
        chan.close()
        await chan.wait_closed()
    result = {
        "opened": opened,
        "refused": refused,
        "errors": sorted(errors)[:5],
        "seconds": round(time.monotonic() - started, 1),
        "final_opened": False,
    }
    try:
        chan, session = await asyncio.wait_for(raw_channel(conn), args.timeout)
        result["final_opened"] = True
        result["final_shell"] = await ask(chan, session, b"shell", [], True, args.timeout)
        if not session.closed.is_set():
            chan.write(codecs.decode(args.type, "unicode_escape").encode("latin-1"))
            await closed_within(session, args.linger)
        result["final_stdout"] = text(session.out)
        result["final_stderr"] = text(session.err)
        chan.close()
    except (asyncssh.Error, OSError, asyncio.TimeoutError) as e:
        result["final_error"] = str(e) or type(e).__name__
    conn.close()
    print(json.dumps(result))


async def logins(args):
    outcome = {"refused": 0, "accepted": 0, "errors": 0}
    kinds = set()
    gate = asyncio.Semaphore(args.concurrency)

    async def one():
        async with gate:
            try:
                conn = await connect(args, args.attempts)
                conn.close()
                outcome["accepted"] += 1
            except asyncssh.PermissionDenied:
                outcome["refused"] += 1
            except (asyncssh.Error, OSError, asyncio.TimeoutError) as e:
                outcome["errors"] += 1
                kinds.add(str(e) or type(e).__name__)

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(args.count)))
    outcome["seconds"] = round(time.monotonic() - started, 1)
    outcome["error_kinds"] = sorted(kinds)[:5]
    print(json.dumps(outcome))


async def preauth(args):
    """Connections that say hello and then nothing."""
    held = []
    for _ in range(args.count):
        reader, writer = await asyncio.open_connection(args.host, args.port)
        writer.write(b"SSH-2.0-hostile_0.1\r\n")
        await writer.drain()
        held.append((reader, writer))
    await asyncio.sleep(0.5)

    async def closed(reader):
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(4096), 3.0)
                if not chunk:
                    return True
        except asyncio.TimeoutError:
            return False
        except OSError:
            return True

    reader, writer = await asyncio.open_connection(args.host, args.port)
    writer.write(b"SSH-2.0-hostile_0.1\r\n")
    extra_closed = await closed(reader)
    first_closed = await closed(held[0][0]) if held else None
    for _, w in held + [(reader, writer)]:
        w.close()
    print(json.dumps({"held": len(held), "extra_closed": extra_closed, "first_closed": first_closed}))


async def forward(args):
    conn = await connect(args)
    results = []
    for destination in args.to:
        host, _, port = destination.rpartition(":")
        outcome = {"to": destination, "opened": False}
        try:
            reader, writer = await asyncio.wait_for(
                conn.open_connection(host.strip("[]"), int(port)), args.timeout
            )
            outcome["opened"] = True
            writer.write(b"SSH-2.0-hostile-forward\r\n")
            try:
                first = await asyncio.wait_for(reader.read(256), args.timeout)
                outcome["received"] = first.decode("latin-1")
            except asyncio.TimeoutError:
                outcome["received"] = None
            writer.close()
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as e:
            outcome["error"] = str(e) or type(e).__name__
        results.append(outcome)
    conn.close()
    print(json.dumps({"forwards": results}))


async def chunks(args):
    """Small writes racing large ones: each write is its own SSH packet
    (asyncssh never merges them), sent back to back so that small ones
    arrive while the bastion still holds large ones for its recorder."""
    rng = random.Random(args.seed)
    conn = await connect(args)
    chan, session = await raw_channel(conn)
    started = await ask(chan, session, b"exec", [String(args.command)], True, args.timeout)
    sent = hashlib.sha256()
    sent_bytes = 0
    for i in range(args.count):
        size = rng.randint(1, 512) if i % 2 == 0 else rng.randint(513, 65536)
        data = rng.randbytes(size)
        chan.write(data)
        sent.update(data)
        sent_bytes += size
        if i % 16 == 15:
            # Now and then the queue empties: small writes then go inline.
            await asyncio.sleep(0.02)
    await echoed(args, conn, chan, session, started, sent_bytes, sent)


async def closed_within(session, seconds):
    """Whether the channel closed (or the connection went) within `seconds`."""
    try:
        await asyncio.wait_for(session.closed.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


async def echoed(args, conn, chan, session, started, sent_bytes, sent):
    """Ends the input, waits for the command to finish, and prints what was
    sent and what came back."""
    chan.write_eof()
    await closed_within(session, args.linger)
    chan.close()
    conn.close()
    print(json.dumps({
        "started": started,
        "sent_bytes": sent_bytes,
        "sent_sha256": sent.hexdigest(),
        "received_bytes": len(session.out),
        "received_sha256": hashlib.sha256(session.out).hexdigest(),
        "stderr": text(session.err),
        "exit_status": session.exit_status,
    }))


async def stall(args):
    """Full duplex with a pause: the client keeps writing while it does
    not read (its window for the output runs out), then reads again. The
    window adjust that says so reaches the server behind the input still
    in flight; a server that stops reading a connection while it waits for
    window on it never sees that adjust. Small writes, so that many packets
    are in flight (OpenSSH's own 32 KiB packets hide it)."""
    rng = random.Random(args.seed)
    conn = await connect(args)
    chan, session = await raw_channel(conn)
    started = await ask(chan, session, b"exec", [String(args.command)], True, args.timeout)
    chan.pause_reading()
    sent = hashlib.sha256()
    for _ in range(args.count):
        data = rng.randbytes(args.size)
        chan.write(data)
        sent.update(data)
    await asyncio.sleep(args.pause)
    chan.resume_reading()
    await echoed(args, conn, chan, session, started, args.count * args.size, sent)


async def upload(args):
    """Everything sent, then EOF and close straight away: the server gets
    the data, the EOF and the close before it has forwarded the data, and
    must still forward every byte."""
    rng = random.Random(args.seed)
    conn = await connect(args)
    chan, session = await raw_channel(conn)
    started = await ask(chan, session, b"exec", [String(args.command)], True, args.timeout)
    sent = hashlib.sha256()
    for _ in range(args.count):
        data = rng.randbytes(args.size)
        chan.write(data)
        sent.update(data)
    chan.write_eof()
    chan.close()
    await closed_within(session, args.linger)
    conn.close()
    print(json.dumps({
        "started": started,
        "sent_bytes": args.count * args.size,
        "sent_sha256": sent.hexdigest(),
    }))


async def overrun(args):
    """A client that ignores flow control: data packets past the window the
    server gave (RFC 4254 section 5.2 says it must not). A server that
    queued them all would hold whatever the client sends."""
    conn = await connect(args)
    chan, session = await raw_channel(conn)
    started = await ask(chan, session, b"exec", [String(args.command)], True, args.timeout)
    begun = time.monotonic()
    sent = 0
    chunk = bytes(PACKET)
    while sent < args.bytes and not session.closed.is_set():
        chan.send_packet(MSG_CHANNEL_DATA, String(chunk))
        sent += len(chunk)
        if sent % (1024 * 1024) == 0:
            # Let the transport write, and see the server's answer.
            await asyncio.sleep(0)
    lost = await closed_within(session, args.linger)
    conn.close()
    print(json.dumps({
        "started": started,
        "sent_bytes": sent,
        "connection_lost": lost,
        "seconds": round(time.monotonic() - begun, 3),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--cert", default=None)
    parser.add_argument("--known-hosts", default=None, help="an @cert-authority file; none: the server is not checked")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for one answer")
    parser.add_argument("--linger", type=float, default=2.0, help="seconds to wait for the server at the end")
    sub = parser.add_subparsers(dest="scenario", required=True)
    p = sub.add_parser("sequence")
    p.add_argument("--step", action="append", default=[],
                   help="pty, shell, exec:CMD, subsystem:NAME, env:N=V, window-change:CxR, signal:NAME, "
                        "break, x11, agent, type:TEXT, eof, sleep:SECONDS; suffix !reply or !noreply")
    p = sub.add_parser("sessions")
    p.add_argument("--count", type=int, required=True)
    p = sub.add_parser("flood")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--type", default="", help="typed into the last channel's shell")
    p = sub.add_parser("logins")
    p.add_argument("--count", type=int, required=True, help="connections")
    p.add_argument("--attempts", type=int, default=1, help="authentication attempts per connection")
    p.add_argument("--concurrency", type=int, default=20)
    p = sub.add_parser("preauth")
    p.add_argument("--count", type=int, required=True)
    p = sub.add_parser("forward")
    p.add_argument("--to", action="append", default=[], help="HOST:PORT, repeatable")
    p = sub.add_parser("chunks")
    p.add_argument("--count", type=int, required=True, help="writes, small and large in turn")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--command", default="cat", help="what runs on the target (exec)")
    p = sub.add_parser("stall")
    p.add_argument("--count", type=int, required=True, help="writes")
    p.add_argument("--size", type=int, default=2048, help="bytes per write")
    p.add_argument("--pause", type=float, default=3.0, help="seconds without reading, after the writes")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--command", default="cat", help="what runs on the target (exec)")
    p = sub.add_parser("upload")
    p.add_argument("--count", type=int, required=True, help="writes")
    p.add_argument("--size", type=int, default=32768, help="bytes per write")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--command", required=True, help="what runs on the target (exec), e.g. cat > FILE")
    p = sub.add_parser("overrun")
    p.add_argument("--bytes", type=int, required=True, help="bytes to send, window or not")
    p.add_argument("--command", default="sleep 60", help="what runs on the target (exec); it must not read")
    args = parser.parse_args()
    if args.known_hosts is None:
        args.known_hosts = None
    scenario = {
        "sequence": sequence,
        "sessions": sessions,
        "flood": flood,
        "logins": logins,
        "preauth": preauth,
        "forward": forward,
        "chunks": chunks,
        "stall": stall,
        "upload": upload,
        "overrun": overrun,
    }[args.scenario]
    asyncio.run(scenario(args))


if __name__ == "__main__":
    main()
