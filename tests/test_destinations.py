"""Where webhooks may go (mfa/destinations.py): the address and URL rules, and the sender on real sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from mfa.destinations import DestinationPolicy, UnsafeDestination, WebhookSender, refusal
from tests.receiver import Receiver, receiving

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata (and link-local)
    "169.254.170.2",
    "100.100.100.200",
    "168.63.129.16",  # Azure's wire server: a public address, refused by name
    "fd00:ec2::254",
    "fe80::1",
    "fc00::1",
    "0.0.0.0",  # noqa: S104 - an address refused, not one bound
    "::",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "100.64.0.1",  # shared address space
    "192.0.2.10",  # documentation
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "2002:7f00:1::1",  # 6to4 around 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
    "fe80::1%eth0",
]
ALLOWED = ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_special_addresses_are_refused(address):
    assert refusal(address)
    with pytest.raises(UnsafeDestination):
        DestinationPolicy().check_address(address)
    DestinationPolicy(allow_private=True).check_address(address)  # WEBHOOK_ALLOW_PRIVATE=1


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address):
    assert refusal(address) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.216.34/",  # http without WEBHOOK_ALLOW_HTTP
        "ftp://93.184.216.34/",
        "https://",
        "https://user@93.184.216.34/",
        "https://93.184.216.34/#frag",
        "https://93.184.216.34:0/",
        "https://93.184.216.34:99999/",
        "https://93.184.216.34/a b",
        "https://" + "a" * 2050 + ".example/",
        "/relative/path",
    ],
)
def test_urls_that_cannot_receive_webhooks_are_refused(url):
    with pytest.raises(UnsafeDestination):
        DestinationPolicy().check_url(url)


def test_http_is_allowed_only_when_told():
    DestinationPolicy(allow_http=True).check_url("http://93.184.216.34/hook")
    DestinationPolicy().check_url("https://93.184.216.34:8443/hook?a=1")


def test_a_name_is_checked_at_every_address_it_resolves_to_and_an_unknown_name_passes():
    with pytest.raises(UnsafeDestination, match="loopback"):
        DestinationPolicy().check_destination("https://localhost/hook")
    # No DNS answer now: the delivery checks the address it connects to in any case.
    assert (
        DestinationPolicy().check_destination("https://no-such-host.invalid/")
        == "https://no-such-host.invalid/"
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as r:
        yield r


def test_the_sender_refuses_a_private_peer_before_sending_a_byte(receiver):
    port = receiver.url.rsplit(":", 1)[1]
    sender = WebhookSender(DestinationPolicy(allow_http=True), timeout_seconds=2)
    for host in ("127.0.0.1", "localhost"):
        answer = sender.post(f"http://{host}:{port}/hook", b"{}", {})
        assert answer.status is None and answer.refused and "loopback" in (answer.error or "")
    assert receiver.received == []
    allowed = WebhookSender(DestinationPolicy(allow_http=True, allow_private=True), timeout_seconds=2)
    assert allowed.post(f"{receiver.url}/hook", b"{}", {}).status == 200


def test_redirects_are_not_followed(receiver):
    receiver.plan("/hook", (302, {"Location": f"{receiver.url}/elsewhere"}))
    sender = WebhookSender(DestinationPolicy(allow_http=True, allow_private=True), timeout_seconds=2)
    assert sender.post(f"{receiver.url}/hook", b"{}", {}).status == 302
    assert receiver.on("/elsewhere") == []


@pytest.fixture
def endless_body() -> Iterator[str]:
    """A server that promises 10 MB, sends 64 KiB, then stalls: reading it all would hit the timeout."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n" + b"x" * 65536)
            stop.wait(10)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    stop.set()
    server.close()


def test_only_a_small_part_of_the_receivers_body_is_read(endless_body):
    sender = WebhookSender(DestinationPolicy(allow_http=True, allow_private=True), timeout_seconds=3)
    answer = sender.post(endless_body, b"{}", {})
    assert answer.status == 200 and answer.error is None
    assert answer.duration_ms < 3000  # it never waited for the 10 MB it was promised


def test_connect_errors_are_answers_not_exceptions():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    sender = WebhookSender(DestinationPolicy(allow_http=True, allow_private=True), timeout_seconds=1)
    answer = sender.post(f"http://127.0.0.1:{port}/hook", b"{}", {})
    assert answer.status is None and answer.error and answer.error.startswith("connection error")
    assert not answer.refused
