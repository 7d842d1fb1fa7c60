"""Compatibility shim for the seed guide's registration.

config.yaml (`litellm_settings.callbacks: custom_callbacks.supabase_usage_logger`)
and the old `LITELLM_CALLBACKS` variable name this module. LiteLLM may load it
from the config directory as a fresh module object, so it must not build a
logger of its own: it hands out the process's one instance, and registration
by identity keeps that a single entry.
"""

from app.registration import get_usage_logger

supabase_usage_logger = get_usage_logger()
proxy_handler_instance = supabase_usage_logger
