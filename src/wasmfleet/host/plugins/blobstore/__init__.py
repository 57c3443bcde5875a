"""wasi:blobstore@0.2.0-draft (interfaces blobstore, container, types) as a host plugin.

- `plugin`: the plugin (config keys, lifecycle, which entry serves which container) and the host
  functions the guest calls;
- `guest_values`: the resources the guest holds (container, outgoing/incoming values, their wasi:io
  streams, the object-name stream);
- `backends`: what every backend implements (`Backend`, `ObjectReader`, `ObjectWriter`) and the
  error the guest sees; `in_memory`, `filesystem`, `nats_objects` (JetStream Object Store) are
  the backends, `nats_bridge` runs nats-py's asyncio client for the guest's synchronous thread,
  `byte_pipes` hands bytes between threads with a bounded buffer.

See docs/plugins.md ("wasi:blobstore") for the backends and their config keys.
"""
