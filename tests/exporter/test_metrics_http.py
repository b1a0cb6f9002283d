"""``/metrics`` writes the renderer's pieces a few hundred kilobytes at a time: a body of many
writes arrives whole, in order and with its length."""
from __future__ import annotations

from exporter.render import CONTENT_TYPE
from exporter.server import CHUNK, make_app


def pieces(total: int) -> list[bytes]:
    """Numbered sample lines of uneven sizes, so chunk boundaries fall mid-way and anywhere."""
    parts, size, i = [], 0, 0
    while size < total:
        part = f'demo_sample{{n="{i}",pad="{"x" * (i % 97)}"}} {i}\n'.encode()
        parts.append(part)
        size += len(part)
        i += 1
    return parts


async def test_a_body_of_many_chunks_arrives_whole_and_in_order(aiohttp_client):
    parts = pieces(5 * CHUNK + 12345)
    client = await aiohttp_client(make_app(lambda: iter(parts), lambda: True, "redis://broker"))
    answer = await client.get("/metrics")
    body = await answer.read()
    assert answer.status == 200
    assert answer.headers["Content-Type"] == CONTENT_TYPE
    assert int(answer.headers["Content-Length"]) == len(body) == sum(map(len, parts))
    assert body == b"".join(parts)
    second = await client.get("/metrics")  # the same connection serves the next scrape
    assert await second.read() == body


async def test_head_answers_the_length_without_a_body(aiohttp_client):
    parts = pieces(2 * CHUNK)
    client = await aiohttp_client(make_app(lambda: iter(parts), lambda: True, "redis://broker"))
    answer = await client.head("/metrics")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == CONTENT_TYPE
    assert int(answer.headers["Content-Length"]) == sum(map(len, parts))
    assert await answer.read() == b""
    after = await client.get("/metrics")  # nothing of a body was left on the connection
    assert after.status == 200 and (await after.read()).startswith(b'demo_sample{n="0"')
