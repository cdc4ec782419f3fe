"""The cgstudio exception tree. Every error a user can cause or meet is one of these.

    CGStudioError                      base; ``exit_code`` for the CLI, ``http_status`` for the server
    ├── UsageError                     bad input or option (CLI exit 2, HTTP 400)
    │   ├── SettingsError              an impossible load/sampling value
    │   ├── InvalidInputError          unusable prompt/file text (NUL, bad UTF-8, empty, too large)
    │   └── UnsupportedModeError       e.g. FIM on a model without FIM tokens
    ├── ModelError                     (CLI exit 1, HTTP 400/404/500)
    │   ├── ModelNotFoundError         no such file or alias (HTTP 404)
    │   ├── ModelFormatError           not a GGUF / unreadable / missing vocab entries
    │   └── ModelLoadError             llama.cpp refused to load it (HTTP 500)
    ├── ContextOverflowError           prompt cannot fit in n_ctx even after trimming (HTTP 400)
    ├── VariantMismatchError           --strict and the variant does not fit the task (HTTP 400)
    ├── OverloadedError                the request queue is full (HTTP 503)
    ├── AuthError                      missing or wrong API key (HTTP 401)
    ├── UpstreamError                  a remote engine failed or is down (HTTP 503)
    ├── HubError                       the Hugging Face Hub (pull) (HTTP 502)
    │   ├── HubUnreachableError        offline or unreachable
    │   ├── GatedRepoAccessError       401/403: accept the Gemma license, set HF_TOKEN (HTTP 403)
    │   ├── ChecksumMismatchError      the download does not match the Hub's sha256
    │   └── DownloadInterruptedError   cut off; `pull` again resumes
    └── DoctorFailedError              `doctor` found a failing check (exit 1)

Messages say what to do next. Lower-level errors are chained with ``raise X from exc``;
the CLI (``exit_code``) and the server (``http_status``, ``code``) read these attributes,
so this tree is the one table.
"""

from __future__ import annotations


class CGStudioError(Exception):
    exit_code: int = 1
    http_status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CGStudioError):
    exit_code = 2
    http_status = 400
    code = "invalid_request"


class SettingsError(UsageError):
    code = "invalid_settings"


class InvalidInputError(UsageError):
    code = "invalid_input"


class UnsupportedModeError(UsageError):
    code = "unsupported_mode"


class ModelError(CGStudioError):
    http_status = 400
    code = "model_error"


class ModelNotFoundError(ModelError):
    http_status = 404
    code = "model_not_found"


class ModelFormatError(ModelError):
    code = "model_format"


class ModelLoadError(ModelError):
    http_status = 500
    code = "model_load_failed"


class ContextOverflowError(CGStudioError):
    http_status = 400
    code = "context_length_exceeded"

    def __init__(self, prompt_tokens: int, n_ctx: int, detail: str = "") -> None:
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx
        msg = (
            f"prompt needs {prompt_tokens} tokens, context is {n_ctx}"
            f"{': ' + detail if detail else ''}; shorten the input or raise --ctx-size"
        )
        super().__init__(msg)


class VariantMismatchError(CGStudioError):
    http_status = 400
    code = "variant_mismatch"


class OverloadedError(CGStudioError):
    http_status = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AuthError(CGStudioError):
    http_status = 401
    code = "invalid_api_key"


class UpstreamError(CGStudioError):
    http_status = 503
    code = "upstream_unavailable"


class HubError(CGStudioError):
    http_status = 502
    code = "hub_error"


class HubUnreachableError(HubError):
    code = "hub_unreachable"


class GatedRepoAccessError(HubError):
    http_status = 403
    code = "hub_gated"


class ChecksumMismatchError(HubError):
    code = "checksum_mismatch"


class DownloadInterruptedError(HubError):
    code = "download_interrupted"


class DoctorFailedError(CGStudioError):
    code = "doctor_failed"
