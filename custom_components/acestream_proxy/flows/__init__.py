"""The integration's flows, one module per flow.

``engine`` is the config flow (an entry per engine) and names the others:
``options`` the broadcaster's tunables, and the subentry flows ``channel``,
``playlist`` (an import of many channels), ``subscription`` (a playlist kept
current) and ``key`` (an app's access key).
``common`` holds what more than one of them uses. A new subentry flow is a new
module here plus one line in ``AceStreamConfigFlow.async_get_supported_subentry_types``.
"""
