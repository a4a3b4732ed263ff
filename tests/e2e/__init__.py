"""Browser end-to-end tests (run by `make e2e`; needs script/e2e_setup.sh)."""
