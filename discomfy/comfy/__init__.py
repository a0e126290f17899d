"""Everything about talking to ComfyUI: typed messages, the HTTP client, and (later) the job stream."""
