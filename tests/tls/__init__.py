"""Tests of the TLS adapter (est_hw.tls) against real TLS peers on 127.0.0.1."""
