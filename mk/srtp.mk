# The independent SRTP check (issue 14): libsrtp, through Python's
# pylibsrtp in a venv, decrypts what the agent sent with the key from its
# SDP answer (agent/tests/srtp_libsrtp.rs, tests/srtp/unprotect.py).
#
#   make test-srtp    (in `make test`) about 5 s after the agent's tests built
#
# Plain `cargo test` skips that test: it needs SIPSENSOR_SRTP_PYTHON.

SRTP_VENV ?= target/srtp-venv
PYTHON ?= python3

TEST_TARGETS += test-srtp

.PHONY: test-srtp srtp-venv

$(SRTP_VENV)/.stamp: tests/srtp/requirements.txt
	rm -rf $(SRTP_VENV)
	$(PYTHON) -m venv $(SRTP_VENV)
	$(SRTP_VENV)/bin/pip install -q --disable-pip-version-check -r $<
	touch $@

srtp-venv: $(SRTP_VENV)/.stamp

test-srtp: $(SRTP_VENV)/.stamp
	SIPSENSOR_SRTP_PYTHON=$(CURDIR)/$(SRTP_VENV)/bin/python \
		$(CARGO) test --locked --all-features -p sipsensor-agent --test srtp_libsrtp -- --nocapture
