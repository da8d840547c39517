"""The TPM 2.0 backend against swtpm, cross-checked with tpm2-tools and tpm2-openssl."""
