"""ModelConfig: the shape of a Transformer, as the zoo files and Hugging Face configs give it.

Only what lowering needs; every zoo file also carries a source for each field.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelConfig:
    """A Transformer's architecture hyper-parameters (no weights)."""

    name: str
    family: str  # "bert" | "gpt2" | "gpt3" | "llama" | "mistral" | "mixtral" | "encoder"
    hidden: int  # d_model
    layers: int
    heads: int
    kv_heads: int  # == heads for MHA, 1 for MQA, in between for GQA
    head_dim: int  # heads * head_dim may differ from hidden (GPT-3 13B: 40 x 128 = 5120 vs 5140)
    ffn: int  # intermediate size (per expert for MoE)
    vocab: int
    max_seq: int
    ffn_type: str = "gelu"  # "gelu" | "relu" (2 matrices) | "swiglu" (3 matrices: gate, up, down)
    norm: str = "layernorm"  # "layernorm" | "rmsnorm"
    position: str = "learned"  # "learned" | "rope" | "relative" | "none"
    causal: bool = True  # False for encoders (BERT, FuseMax's encoders)
    experts: int = 1  # MoE experts per layer (1 = dense)
    top_k: int = 1  # experts each token is routed to
    bias: bool = False  # biases on the projections (BERT, GPT-2) -- counted in parameters
    tie_embeddings: bool = False  # LM head shares the token embedding matrix
    type_vocab: int = 0  # BERT token-type embeddings
    rope_theta: float | None = None
    sliding_window: int | None = None
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # field -> citation
    description: str = field(default="", compare=False)

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def group(self) -> int:
        """Query heads per KV head (GQA group size)."""
        return self.heads // self.kv_heads
