"""The email channel: raw RFC 5322 messages (pushed, or polled over IMAP) parsed into the
normalized inbound message; agent replies sent over SMTP, threaded by Message-ID."""
