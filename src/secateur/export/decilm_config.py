"""The configuration class shipped inside a nemotron-nas export (`configuration_decilm.py`).

vLLM's DeciLMForCausalLM reads `config.block_configs[i].attention.n_heads_in_group` and friends as
attributes, and neither vLLM nor transformers has a config class for model_type "nemotron-nas", so
the folder carries this small one (loaded with `trust_remote_code=True`: a local folder, nothing is
downloaded). Its feed-forward sections have `intermediate_size` and no `ffn_mult`: vLLM then uses the
width as written, not rounded from a multiplier.
"""

SOURCE = '''"""nemotron-nas (DeciLM) configuration, written by secateur for its heterogeneous exports.

Each entry of `block_configs` becomes an object with `.attention` and `.ffn` sections whose keys are
attributes (what vLLM's DeciLMForCausalLM reads); `to_dict` writes them back as plain JSON.
"""

from transformers import PretrainedConfig


class _Section:
    def __init__(self, values):
        self.__dict__.update(values)

    def to_dict(self):
        return dict(self.__dict__)


class _Block:
    def __init__(self, values):
        self.attention = _Section(values["attention"])
        self.ffn = _Section(values["ffn"])

    def to_dict(self):
        return {"attention": self.attention.to_dict(), "ffn": self.ffn.to_dict()}


class DeciLMConfig(PretrainedConfig):
    model_type = "nemotron-nas"

    def __init__(self, block_configs=None, **kwargs):
        self.block_configs = [b if isinstance(b, _Block) else _Block(b) for b in block_configs or []]
        super().__init__(**kwargs)

    def to_dict(self):
        data = super().to_dict()
        data["block_configs"] = [block.to_dict() for block in self.block_configs]
        return data
'''
