#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpora of the fuzz targets: corpus/handshake, frame, utf8, config, connection,
deflate, envelope, token.

Every seed is [control byte][payload]; the control byte is decoded by the target (see the header
comment of each fuzz_*.cpp): limits or decoder options, and how the payload is cut into reads.
Deterministic (fixed RNG seed), stdlib only. Rerun after changing it and commit the result:

    /usr/bin/python3 tests/fuzz/make_seeds.py

Only the files named here are (re)written; anything else in corpus/ (e.g. the reproducer of a
fixed bug, named regression-<what>) is left alone.
"""

import base64
import hashlib
import hmac
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
rng = random.Random(6455)


def write(kind, name, control, payload):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes([control]) + payload)


# --- Handshake: control = limits (bits 0-1) | split selector << 2 (see split_points()) ---

def hs(limits=0, selector=0):
    return limits | (selector << 2)


def request(lines, target="/chat", method="GET", version="HTTP/1.1"):
    return f"{method} {target} {version}\r\n" + "".join(l + "\r\n" for l in lines) + "\r\n"


KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3
UPGRADE = ["Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
           f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"]

CHROME = request([
    "Host: chat.example.com:8080",
    "Connection: Upgrade",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Upgrade: websocket",
    "Origin: http://chat.example.com:8080",
    "Sec-WebSocket-Version: 13",
    "Accept-Encoding: gzip, deflate, br",
    "Accept-Language: en-US,en;q=0.9",
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==",
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
], target="/lobby?name=ann")

FIREFOX = request([
    "Host: chat.example.com",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Accept: */*",
    "Accept-Language: en-US,en;q=0.5",
    "Accept-Encoding: gzip, deflate, br",
    "Sec-WebSocket-Version: 13",
    "Origin: https://chat.example.com",
    "Sec-WebSocket-Protocol: chat, superchat",
    "Sec-WebSocket-Extensions: permessage-deflate",
    "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==",
    "Connection: keep-alive, Upgrade",
    "Sec-Fetch-Dest: empty",
    "Sec-Fetch-Mode: websocket",
    "Sec-Fetch-Site: same-origin",
    "Pragma: no-cache",
    "Cache-Control: no-cache",
    "Upgrade: websocket",
], target="/room/42")

SAFARI = request([
    "Host: 127.0.0.1:8080",
    "Origin: http://127.0.0.1:8080",
    "Upgrade: websocket",
    "Accept-Encoding: gzip, deflate",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: 9mXFt/gNJDeVmjCcHxS1rQ==",
    "Sec-WebSocket-Extensions: permessage-deflate",
    "Connection: Upgrade",
    "User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
], target="/")

CURL_PAGE = request(["Host: localhost:8080", "User-Agent: curl/7.88.1", "Accept: */*"], target="/")


def handshake_seeds():
    s = "handshake"
    write(s, "chrome", hs(0, 0), CHROME)
    write(s, "chrome_bytewise", hs(0, 32), CHROME)
    write(s, "firefox_protocols", hs(0, 15), FIREFOX)
    write(s, "firefox_random_reads", hs(0, 50), FIREFOX)
    write(s, "safari", hs(0, 31), SAFARI)
    write(s, "rfc6455_example", hs(0, 20), request(
        ["Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
         f"Sec-WebSocket-Key: {KEY}", "Origin: http://example.com",
         "Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Version: 13"]))
    write(s, "lowercase_names_tabs", hs(0, 7), request(
        ["host:example.com", "upgrade:\tWebSocket", "connection: keep-alive,\tupgrade ",
         f"sec-websocket-key:   {KEY}", "sec-websocket-version: 13"]))
    write(s, "absolute_form", hs(0, 10), request(UPGRADE, target="http://example.com/room?x=1"))
    write(s, "absolute_form_no_path", hs(0, 10), request(UPGRADE, target="wss://example.com"))
    write(s, "leading_crlf", hs(0, 1), "\r\n\r\n" + request(UPGRADE))
    write(s, "frame_after_upgrade", hs(0, 40), request(UPGRADE) + "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
    write(s, "pipelined_http", hs(0, 25), CURL_PAGE + request(["Host: a"], target="/favicon.svg", method="HEAD"))
    write(s, "page_get", hs(0, 3), CURL_PAGE)
    write(s, "head", hs(0, 45), request(["Host: a", "Connection: close"], target="/index.html", method="HEAD"))
    write(s, "http10", hs(0, 12), request(["Connection: keep-alive"], target="/", version="HTTP/1.0"))
    write(s, "http10_upgrade", hs(0, 12), request(UPGRADE, version="HTTP/1.0"))
    write(s, "post_upgrade_405", hs(0, 9), request(UPGRADE, method="POST"))
    write(s, "version_8_426", hs(0, 9), request(UPGRADE[:4] + ["Sec-WebSocket-Version: 8"]))
    write(s, "version_missing_426", hs(0, 9), request(UPGRADE[:4]))
    write(s, "version_repeated", hs(0, 9), request(UPGRADE + ["Sec-WebSocket-Version: 13"]))
    write(s, "key_short", hs(0, 5), request(UPGRADE[:3] + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=", UPGRADE[4]]))
    write(s, "key_noncanonical", hs(0, 5), request(UPGRADE[:3] + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==", UPGRADE[4]]))
    write(s, "key_bad_char", hs(0, 5), request(UPGRADE[:3] + ["Sec-WebSocket-Key: dGhlIHNhbXBsZSBub2*jZQ==", UPGRADE[4]]))
    write(s, "key_repeated", hs(0, 5), request(UPGRADE + [f"Sec-WebSocket-Key: {KEY}"]))
    write(s, "no_connection_upgrade", hs(0, 5), request([l for l in UPGRADE if not l.startswith("Connection")]))
    write(s, "host_missing", hs(0, 6), request(UPGRADE[1:]))
    write(s, "host_repeated", hs(0, 6), request(UPGRADE + ["Host: evil.example"]))
    write(s, "obs_fold", hs(0, 6), request(UPGRADE[:2] + [" folded", *UPGRADE[2:]]))
    write(s, "no_colon", hs(0, 6), request(UPGRADE + ["NoColonHere"]))
    write(s, "space_before_colon", hs(0, 6), request(UPGRADE + ["Upgrade : websocket"]))
    write(s, "ctl_in_value", hs(0, 6), request(UPGRADE + ["X-Evil: a\x00b\x7f"]))
    write(s, "bare_lf", hs(0, 6), request(UPGRADE).replace("\r\n", "\n"))
    write(s, "bare_cr", hs(0, 6), "GET / HTTP/1.1\rHost: a\r\r\n\r\n")
    write(s, "http2_505", hs(0, 2), request(["Host: a"], version="HTTP/2.0"))
    write(s, "bad_version", hs(0, 2), request(["Host: a"], version="HTTP/1.x"))
    write(s, "bad_request_line", hs(0, 2), "GET  / HTTP/1.1\r\nHost: a\r\n\r\n")
    write(s, "bad_target", hs(0, 2), request(["Host: a"], target="chat"))
    write(s, "fragment_target", hs(0, 2), request(["Host: a"], target="/chat#x"))
    write(s, "get_body", hs(0, 2), request(["Host: a", "Content-Length: 5"]) + "hello")
    write(s, "chunked", hs(0, 2), request(UPGRADE + ["Transfer-Encoding: chunked"]) + "0\r\n\r\n")
    write(s, "utf8_obs_text", hs(0, 2), request(["Host: a", "X-Name: Zoë 中文"], target="/r%C3%A9"))
    many = ["Host: a"] + [f"X-H{i}: {i}" for i in range(70)]
    write(s, "too_many_headers", hs(0, 60), request(many))
    write(s, "limit_bytes_chrome", hs(1, 30), CHROME)
    write(s, "limit_bytes_small", hs(1, 8), request(["Host: a"], target="/"))
    write(s, "limit_count", hs(2, 16), request(UPGRADE))
    write(s, "limit_count_http10", hs(3, 16), "GET / HTTP/1.0\r\n\r\n")
    write(s, "partial", hs(0, 12), request(UPGRADE)[:-2])
    write(s, "empty", hs(0, 0), "")


# --- Frames: control = client (bit 0) | allow_rsv1 (1) | no utf8 check (2) | small max (3) | split << 4 ---

def fr(client=False, rsv1=False, no_utf8=False, small_max=False, split=0):
    return int(client) | int(rsv1) << 1 | int(no_utf8) << 2 | int(small_max) << 3 | split << 4


TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(op, payload=b"", fin=True, rsv=0, masked=True, key=None, length_form=None, length=None):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    form = length_form or ("7" if n <= 125 else "16" if n <= 0xFFFF else "64")
    out = bytearray([(0x80 if fin else 0) | rsv << 4 | op])
    m = 0x80 if masked else 0
    if form == "7":
        out.append(m | n)
    elif form == "16":
        out.append(m | 126)
        out += struct.pack(">H", n)
    else:
        out.append(m | 127)
        out += struct.pack(">Q", n)
    if masked:
        key = key if key is not None else bytes(rng.randrange(256) for _ in range(4))
        out += key
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(out) + payload


def close_payload(code, reason=b""):
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack(">H", code) + reason


def frame_seeds():
    s = "frame"
    # RFC 6455 §5.7 examples.
    write(s, "rfc_masked_hello", fr(split=4), b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
    write(s, "rfc_unmasked_hello_client", fr(client=True, split=4), b"\x81\x05\x48\x65\x6c\x6c\x6f")
    write(s, "rfc_fragmented_client", fr(client=True, split=1), b"\x01\x03\x48\x65\x6c\x80\x02\x6c\x6f")
    write(s, "rfc_ping_pong_client", fr(client=True, split=2),
          b"\x89\x05\x48\x65\x6c\x6c\x6f" + frame(PONG, "Hello", masked=False))
    write(s, "ping_pong_masked", fr(split=2), frame(PING, "Hello") + frame(PONG, "Hello"))
    # Every opcode, every length class.
    write(s, "text_empty", fr(split=0), frame(TEXT, ""))
    write(s, "text_125", fr(split=5), frame(TEXT, "a" * 125))
    write(s, "text_126_16bit", fr(split=6), frame(TEXT, "b" * 126))
    write(s, "text_utf8_16bit", fr(split=9), frame(TEXT, ("héllo wörld 中文 🎉 " * 40)[:300]))
    write(s, "binary_1", fr(split=4), frame(BINARY, b"\x00"))
    write(s, "binary_300", fr(split=11), frame(BINARY, bytes(rng.randrange(256) for _ in range(300))))
    write(s, "binary_64bit_truncated", fr(split=13),
          frame(BINARY, bytes(range(256)), length=70000)[:14 + 256])
    write(s, "ping_125", fr(split=7), frame(PING, b"p" * 125))
    write(s, "ping_empty_pong_empty", fr(split=4), frame(PING) + frame(PONG))
    write(s, "close_empty", fr(split=4), frame(CLOSE))
    write(s, "close_1000", fr(split=4), frame(CLOSE, close_payload(1000)))
    write(s, "close_1001_reason", fr(split=5), frame(CLOSE, close_payload(1001, "going away — bye")))
    write(s, "close_4000_reason_123", fr(split=8), frame(CLOSE, close_payload(4000, "x" * 123)))
    write(s, "close_1byte", fr(split=4), frame(CLOSE, b"\x03"))
    write(s, "close_1005", fr(split=4), frame(CLOSE, close_payload(1005)))
    write(s, "close_999", fr(split=4), frame(CLOSE, close_payload(999)))
    write(s, "close_2999", fr(split=4), frame(CLOSE, close_payload(2999)))
    write(s, "close_bad_utf8_reason", fr(split=4), frame(CLOSE, close_payload(1000, b"\xce")))
    # Fragmented messages, control frames between fragments, code points across fragments.
    frags = (frame(TEXT, "Hel", fin=False) + frame(PING, "x") + frame(CONT, "lo ", fin=False)
             + frame(PONG) + frame(CONT, "wörld"))
    write(s, "fragmented_text_interleaved", fr(split=1), frags)
    write(s, "fragmented_text_random_reads", fr(split=12), frags)
    euro = "€".encode("utf-8")
    write(s, "utf8_split_across_fragments", fr(split=4),
          frame(TEXT, euro[:1], fin=False) + frame(CONT, euro[1:2], fin=False) + frame(CONT, euro[2:]))
    write(s, "fragmented_binary_empty_parts", fr(split=14),
          frame(BINARY, b"", fin=False) + frame(CONT, b"\x01\x02", fin=False) + frame(CONT, b""))
    write(s, "messages_back_to_back", fr(split=15),
          frame(TEXT, "one") + frame(BINARY, b"\xff\xfe") + frame(TEXT, "drei") + frame(CLOSE, close_payload(1000)))
    write(s, "after_close", fr(split=3), frame(CLOSE, close_payload(1000)) + frame(TEXT, "late"))
    # Protocol errors.
    write(s, "unmasked_to_server", fr(split=4), frame(TEXT, "hi", masked=False))
    write(s, "masked_to_client", fr(client=True, split=4), frame(TEXT, "hi"))
    write(s, "reserved_opcode_3", fr(split=4), frame(0x3, "x"))
    write(s, "reserved_opcode_b", fr(split=4), frame(0xB, "x"))
    write(s, "rsv1_without_extension", fr(split=4), frame(TEXT, "x", rsv=4))
    write(s, "rsv1_deflate", fr(rsv1=True, split=4),
          frame(TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4, fin=False) + frame(CONT, b"\x00"))
    write(s, "rsv1_on_continuation", fr(rsv1=True, split=4),
          frame(TEXT, "a", fin=False, rsv=4) + frame(CONT, "b", rsv=4))
    write(s, "rsv1_on_ping", fr(rsv1=True, split=4), frame(PING, "a", rsv=4))
    write(s, "rsv2", fr(split=4), frame(BINARY, "x", rsv=2))
    write(s, "rsv3", fr(split=4), frame(BINARY, "x", rsv=1))
    write(s, "continuation_first", fr(split=4), frame(CONT, "x"))
    write(s, "text_inside_fragmented", fr(split=4), frame(TEXT, "a", fin=False) + frame(TEXT, "b"))
    write(s, "fragmented_ping", fr(split=4), frame(PING, "a", fin=False))
    write(s, "ping_126", fr(split=4), frame(PING, b"p" * 126))
    write(s, "length_16bit_not_minimal", fr(split=4), frame(BINARY, b"abc", length_form="16"))
    write(s, "length_64bit_not_minimal", fr(split=4), frame(BINARY, b"abc", length_form="64"))
    write(s, "length_64bit_top_bit", fr(split=4), frame(BINARY, b"", length_form="64", length=1 << 63)[:14])
    write(s, "text_overlong", fr(split=4), frame(TEXT, b"a\xc0\xafb"))
    write(s, "text_surrogate", fr(split=4), frame(TEXT, b"\xed\xa0\x80"))
    write(s, "text_above_10ffff", fr(split=4), frame(TEXT, b"\xf4\x90\x80\x80"))
    write(s, "text_ends_mid_codepoint", fr(split=4), frame(TEXT, "ab€".encode()[:-1]))
    write(s, "text_invalid_late_in_frame", fr(split=5), frame(TEXT, b"valid text " * 8 + b"\xff"))
    write(s, "text_invalid_second_fragment", fr(split=10),
          frame(TEXT, "ok ", fin=False) + frame(PING) + frame(CONT, b"\xfe"))
    write(s, "text_invalid_unchecked", fr(no_utf8=True, split=4), frame(TEXT, b"\xff\xfe"))
    write(s, "too_big_small_limit", fr(small_max=True, split=4), frame(BINARY, b"z" * 201))
    write(s, "too_big_fragments", fr(small_max=True, split=5),
          frame(TEXT, "a" * 150, fin=False) + frame(CONT, "b" * 51))
    write(s, "fits_small_limit", fr(small_max=True, split=5),
          frame(TEXT, "a" * 150, fin=False) + frame(CONT, "b" * 50))
    write(s, "too_big_64bit", fr(split=4), frame(BINARY, b"", length=(1 << 40))[:14])
    write(s, "partial_header", fr(split=0), frame(BINARY, b"x" * 300)[:3])
    write(s, "partial_control", fr(split=0), frame(PING, b"x" * 100)[:50])


# --- UTF-8: control = split selector (low 6 bits) ---

def utf8_seeds():
    s = "utf8"
    write(s, "ascii", 0, "Hello, world! The quick brown fox jumps over the lazy dog.")
    write(s, "ascii_bytewise", 32, "0123456789abcdefghijklmnopqrstuvwxyz")
    write(s, "empty", 0, "")
    write(s, "latin", 15, "Zoë, café, naïve, Ærøskøbing, ß")
    write(s, "chinese", 33, "你好，世界。这是一个聊天室。")
    write(s, "mixed_chat", 50, "ann: 你好 👋 — ça va? " * 4)
    write(s, "emoji", 34, "🎉🔥👍🏽🇩🇪")
    write(s, "boundaries", 32, "\u007f\u0080\u07ff\u0800\ufffd\uffff\U00010000\U0010ffff\ud7ff\ue000")
    write(s, "long_ascii_then_multibyte", 55, "x" * 40 + "é" + "y" * 17 + "中")
    write(s, "nul_and_controls", 8, "\x00\x01\x1f\x7f")
    bad = {
        "c0_overlong": b"a\xc0\x80", "c1_overlong": b"\xc1\xbf", "e0_overlong": b"\xe0\x80\x80",
        "e0_9f": b"\xe0\x9f\xbf", "surrogate_high": b"\xed\xa0\x80", "surrogate_low": b"\xed\xbf\xbf",
        "f0_overlong": b"\xf0\x8f\xbf\xbf", "above_10ffff": b"\xf4\x90\x80\x80", "f5": b"\xf5\x80\x80\x80",
        "ff": b"ok\xff", "lone_continuation": b"\x80", "truncated_2": b"\xc3", "truncated_3": b"\xe4\xbd",
        "truncated_4": b"\xf0\x9f\x8e", "lead_then_ascii": b"\xe4a\xbd", "cesu8_pair": b"\xed\xa0\xbd\xed\xb8\x80",
        "invalid_after_16_ascii": b"abcdefghijklmnop\xc3", "five_byte": b"\xf8\x88\x80\x80\x80",
    }
    for i, (name, data) in enumerate(bad.items()):
        write(s, "bad_" + name, [0, 16, 31, 32, 33, 48][i % 6], data)
    # Long enough for the vector path (64 bytes or more per feed): valid mixed text, and errors
    # placed across 32-byte block edges and in a sequence cut by the end of the last block.
    chat = ("ann: 你好 👋 — ça va? bob: très bien, 谢谢! " * 8).encode()
    write(s, "long_mixed", 0, chat)
    write(s, "long_mixed_pieces", 1, chat)
    write(s, "long_cjk", 0, ("中文聊天室" * 30).encode())
    write(s, "long_bad_surrogate_at_block_edge", 0, b"a" * 31 + b"\xed\xa0\x80" + b"b" * 60)
    write(s, "long_bad_overlong_late", 0, ("é" * 40).encode() + b"\xe0\x80\x80" + b"c" * 30)
    write(s, "long_cut_at_block_end", 0, b"d" * 62 + "😀".encode() + b"e" * 40)
    write(s, "long_bad_lone_continuation", 0, ("中" * 30).encode() + b"\x80" + b"f" * 40)


# --- Config: control byte ignored by nothing (the whole input is the TOML text; write() still
# prepends one byte, so config seeds start with a newline instead) ---

def config_seeds():
    s = "config"
    d = os.path.join(HERE, "corpus", s)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(HERE, "..", "..", "etc", "wsrelay", "wsrelay.toml"), "rb") as f:
        packaged = f.read()
    seeds = {
        "packaged": packaged,
        "empty": b"",
        "full": (b'[server]\nwww_root = "/srv"\nlog_level = "debug"\nhealthz = false\n'
                 b'[[listen]]\naddress = "[::1]:443"\ntls = true\nname = "https"\nmetrics = true\n'
                 b'[tls]\ncertificate = "/c"\nprivate_key = "/k"\nmin_version = "1.3"\n'
                 b'[[tls.sni]]\nserver_name = "*.a.test"\ncertificate = "/c2"\nprivate_key = "/k2"\n'
                 b'[limits]\nmax_connections = 5\nmax_connections_per_ip = 0\nmessage_rate = 0\n'
                 b'message_burst = 3\nrate_limit_action = "drop"\nmax_message_bytes = 1000\n'
                 b'send_queue_bytes = 5000\nslow_consumer = "drop"\nallowed_origins = ["https://a"]\n'
                 b'[timeouts]\nhandshake_timeout = "1s"\nping_interval = "2m"\nidle_timeout = "1h"\n'
                 b'[rooms]\necho = false\nmax_members = 3\n[[room]]\npath = "/a"\necho = true\n'),
        "wrong_type": b'[limits]\nmax_message_bytes = "big"\n',
        "unknown_key": b'[limits]\nbogus = 1\n',
        "bad_duration": b'[timeouts]\nidle_timeout = "10 parsecs"\n',
        "bad_address": b'[[listen]]\naddress = "localhost:80"\n',
        "syntax_error": b'[limits\nx = \n',
        "unicode_keys": '["ключ"]\n"ж" = 1\n'.encode(),
        "deep_inline": b'a = {b = {c = {d = [1, [2, [3, {e = 4}]]]}}}\n',
        "dates_and_floats": b'[server]\nwww_root = 1979-05-27T07:32:00Z\nhealthz = 1.5e3\n',
    }
    for name, text in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(text)


# --- Connection: control = split selector (bits 0-5) | observer in /fuzz (0x40) | shutdown (0x80) ---

def connection_seeds():
    s = "connection"
    up = request(UPGRADE, target="/fuzz").encode()
    write(s, "upgrade_text_close", 0x40 | 4, up + frame(TEXT, "hello") + frame(CLOSE, struct.pack("!H", 1000) + b"bye"))
    write(s, "upgrade_bytewise", 32, up + frame(TEXT, "héllo") + frame(PING, "p"))
    write(s, "fragmented_with_ping", 0x40 | 50, up + frame(TEXT, "frag", fin=False) + frame(PING, "x") +
          frame(CONT, "mented", fin=True))
    write(s, "binary_big", 0x40 | 10, up + frame(BINARY, bytes(rng.randrange(256) for _ in range(3000))))
    write(s, "too_big_1009", 0x40 | 12, up + frame(BINARY, b"z" * 70000))
    write(s, "bad_utf8_1007", 0x80 | 5, up + frame(TEXT, b"ok\xc3("))
    write(s, "reserved_opcode_1002", 3, up + bytes([0x83, 0x80, 1, 2, 3, 4]))
    write(s, "unmasked_1002", 3, up + b"\x81\x02hi")
    write(s, "shutdown_1001", 0x80 | 0x40 | 7, up + frame(TEXT, "a") * 20)
    write(s, "http_keepalive", 6, CURL_PAGE.encode() + request(["Host: a"], target="/healthz").encode() +
          request(["Host: a"], method="POST").encode())
    write(s, "http_then_upgrade", 40, CURL_PAGE.encode() + up + frame(TEXT, "after page"))
    write(s, "header_flood_431", 9, b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 300 + b"\r\n")
    write(s, "garbage", 48, bytes(rng.randrange(256) for _ in range(500)))
    write(s, "close_invalid_code", 0x40 | 2, up + frame(CLOSE, struct.pack("!H", 1005)))
    write(s, "many_small", 0x40 | 33, up + b"".join(frame(TEXT, str(i)) for i in range(200)))


# --- Deflate: control = split selector (bits 0-5) | window (bits 6-7: 9, 11, 13, 15) ---

def deflate_seeds():
    import zlib

    def comp(b, bits=15):
        z = zlib.compressobj(6, zlib.DEFLATED, -bits)
        return (z.compress(b) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]

    def final_block(b):
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        return z.compress(b) + z.flush(zlib.Z_FINISH)

    s = "deflate"
    write(s, "hello_rfc", 0, bytes.fromhex("f248cdc9c90700"))  # RFC 7692 §7.2.3.1
    write(s, "text", 33, comp("héllo wörld 你好 ".encode() * 20))
    write(s, "bytewise", 32, comp(b"abcabcabc" * 50))
    write(s, "window9", 0x40 | 5, comp(b"x" * 3000, 9))
    write(s, "bomb", 7, comp(b"\0" * 200000))
    write(s, "final_block", 3, final_block(b"fin"))
    write(s, "garbage", 50, bytes(range(256)))
    write(s, "empty_message", 0, b"\x00")
    write(s, "plain_input", 0xC0, "some plain text to compress 中文".encode() * 10)


def envelope_seeds():
    # [limit / 64][envelope]: "WSR1", u8 node id length, node id, then per message u8 opcode,
    # u32 big-endian length, payload (cluster/envelope.h).
    def env(node, messages):
        out = b"WSR1" + bytes([len(node)]) + node
        for op, payload in messages:
            out += bytes([op]) + struct.pack("!I", len(payload)) + payload
        return out

    s = "envelope"
    write(s, "one_text", 255, env(b"host:1", [(1, "héllo 你好".encode())]))
    write(s, "batch", 255, env(b"node-a", [(1, b"a"), (2, bytes(range(256))), (1, b""), (2, b"\0" * 100)]))
    write(s, "empty_node", 16, env(b"", [(2, b"x" * 1000)]))
    write(s, "over_limit", 1, env(b"n", [(2, b"y" * 65)]))
    write(s, "bad_utf8", 255, env(b"n", [(1, b"\xc3\x28")]))
    write(s, "bad_opcode", 255, env(b"n", [(9, b"ping")]))
    write(s, "truncated", 255, env(b"n", [(1, b"hello")])[:-2])
    write(s, "no_messages", 255, env(b"node", []))
    write(s, "channel_name", 0, b"wsrelay:room:/lobby")
    write(s, "not_ours", 255, b"PING")


def token_seeds():
    # [options][token]: options bit 0 requires aud "wsrelay", bit 1 iss "joe", bits 2-7 advance the
    # clock in 30-day steps from 1300000000 (fuzz_token.cpp). The HMAC secret is the target's; the
    # RS256, ES256 and EdDSA tokens are the RFC examples, whose public keys the target holds.
    secret = b"wsrelay fuzz secret: 32 bytes or more"

    def b64(data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def hs256(payload, header='{"alg":"HS256","typ":"JWT"}'):
        signing_input = b64(header) + "." + b64(payload)
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64(mac)

    rfc_payload = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    # RFC 7515 A.2 (RS256), A.3 (ES256), A.4 (ES512); RFC 8037 A.4 (EdDSA, payload not JSON).
    rs256 = ("eyJhbGciOiJSUzI1NiJ9." + rfc_payload + ".cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7"
             "AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K"
             "0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrB"
             "p0igcN_IoypGlUPQGe77Rw")
    es256 = ("eyJhbGciOiJFUzI1NiJ9." + rfc_payload +
             ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q")
    es512 = ("eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZq"
             "wqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn")
    eddsa = ("eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc"
             ".hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg")
    full = ('{"sub":"ann","iss":"joe","aud":["api","wsrelay"],"exp":1300100000,"nbf":1299999000.5,'
            '"rooms":["/lobby","/team/*"],"publish":false}')

    s = "token"
    write(s, "rfc7515_rs256", 0, rs256)
    write(s, "rfc7515_es256_iss", 2, es256)
    write(s, "rfc7515_rs256_expired", 4, rs256)
    write(s, "rfc7515_es512", 0, es512)
    write(s, "rfc8037_eddsa", 0, eddsa)
    write(s, "hs256_full", 3, hs256(full))
    write(s, "hs256_expired", 8, hs256(full))
    write(s, "hs256_wrong_aud", 1, hs256('{"aud":"api"}'))
    write(s, "hs256_minimal", 0, hs256("{}", '{"alg":"HS256"}'))
    write(s, "hs256_wildcard", 0, hs256('{"rooms":["/*"],"sub":"bot"}'))
    write(s, "hs256_duplicate_exp", 0, hs256('{"exp":1,"exp":9999999999}'))
    write(s, "hs256_bad_claims", 0, hs256('{"rooms":"/lobby","publish":"yes"}'))
    write(s, "hs256_array_payload", 0, hs256('[{"sub":"x"}]'))
    write(s, "hs256_crit", 0, hs256("{}", '{"alg":"HS256","crit":["exp"]}'))
    write(s, "alg_none", 0, b64('{"alg":"none"}') + "." + b64('{"sub":"x"}') + ".")
    write(s, "alg_confusion", 0, hs256('{"sub":"m"}', '{"alg":"RS256"}'))
    write(s, "tampered_payload", 0, hs256(full).replace(b64(full), b64(full.replace("ann", "bob"))))
    write(s, "padded", 0, hs256("{}") + "=")
    write(s, "jwe_five_segments", 0, "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZ.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6ji.XFBoMYUZodetZdvTiFvSkQ")
    write(s, "empty", 0, "")


def main():
    handshake_seeds()
    frame_seeds()
    utf8_seeds()
    config_seeds()
    connection_seeds()
    deflate_seeds()
    envelope_seeds()
    token_seeds()
    total = 0
    for root, _, files in os.walk(os.path.join(HERE, "corpus")):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"corpus: {total} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
