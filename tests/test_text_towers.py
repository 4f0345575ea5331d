"""Text transformer and two-tower model: big_vision parameter layout, pooling, temperature
and bias init, the locked image tower, released SigLIP param counts; tokenizers and the
`tokenize` op."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from init_helpers import abstract_init, init

from framework import config as config_lib
from framework import flops, registry
from framework.data import tokenizers
from projects.image_text import contrastive_losses
from projects.image_text.text_transformer import TextTransformer
from projects.image_text.two_tower import TwoTower
from tools import cli

TEXT = dict(vocab_size=50, hidden_size=16, depth=2, mlp_dim=32, num_heads=2)
IMAGE = dict(patch_size=(4, 4), hidden_size=16, depth=1, mlp_dim=32, num_heads=2,
             pool_type="map")


def _paths(tree):
    return {"/".join(str(getattr(k, "key", k)) for k in path)
            for path, _ in jax.tree_util.tree_flatten_with_path(nn.unbox(tree))[0]}


def test_text_transformer_tree_is_big_visions():
    model = TextTransformer(num_classes=8, pool_type="map", **TEXT)
    params = abstract_init(model, jnp.zeros((2, 7), jnp.int32))["params"]
    paths = _paths(params)
    for expected in ("Embed_0/embedding", "pos_embedding", "head/kernel", "head/bias",
                     "Encoder_0/encoderblock_1/MlpBlock_0/Dense_0/kernel",
                     "Encoder_0/encoder_norm/scale", "MAPHead_0/probe"):
        assert expected in paths, expected
    assert nn.unbox(params)["pos_embedding"].shape == (1, 7, 16)
    assert nn.unbox(params)["Embed_0"]["embedding"].shape == (50, 16)


@pytest.mark.parametrize("pool_type", ["last", "first", "gap", "max", "map"])
def test_text_pooling(pool_type):
    model = TextTransformer(num_classes=None, pool_type=pool_type, **TEXT)
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 50, (3, 6)), jnp.int32)
    variables = init(model, tokens)
    out = model.apply(variables, tokens)
    assert out.shape == (3, 16) and out.dtype == jnp.float32
    if pool_type == "last":
        # Changing the last token changes 'last' pooling; the output depends on every token.
        other = model.apply(variables, tokens.at[:, 0].set((tokens[:, 0] + 1) % 50))
        assert not np.allclose(out, other)


def test_text_pooling_rejects_unknown():
    with pytest.raises(ValueError, match="pool_type"):
        TextTransformer(pool_type="cls", **TEXT).init(jax.random.key(0), jnp.zeros((1, 4), int))


def _two_tower(**kwargs):
    return TwoTower(image=IMAGE, text=TEXT, out_dim=(None, 16), temperature_init=10.0,
                    bias_init=-10.0, **kwargs)


def _batch(batch=4):
    rng = np.random.default_rng(0)
    return {"image": jnp.asarray(rng.normal(size=(batch, 8, 8, 3)), jnp.float32),
            "text": jnp.asarray(rng.integers(0, 50, (batch, 5)), jnp.int32)}


def test_two_tower_layout_and_init():
    model = _two_tower()
    variables = model.init(jax.random.key(0), _batch())
    params = nn.unbox(variables["params"])
    assert set(params) == {"img", "txt", "t", "b"}
    assert "head" not in params["img"] and "head" in params["txt"]
    assert "embedding" in params["img"] and "MAPHead_0" in params["img"]
    np.testing.assert_allclose(params["t"], [np.log(10.0)], rtol=1e-6)  # t' = log 10
    np.testing.assert_allclose(params["b"], [-10.0])
    out = model.apply(variables, _batch())
    assert out["zimg"].shape == out["ztxt"].shape == (4, 16)
    np.testing.assert_allclose(np.linalg.norm(out["zimg"], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out["t"], 10.0, rtol=1e-6)
    # One tower alone (zero-shot class embeddings, image embeddings).
    assert set(model.apply(variables, {"text": _batch()["text"]})) == {"ztxt", "t", "b"}
    assert set(model.apply(variables, {"image": _batch()["image"]})) == {"zimg", "t", "b"}


def test_locked_image_tower_gets_no_gradient():
    model = _two_tower(lock_image=True)
    variables = model.init(jax.random.key(0), _batch())
    loss_fn = contrastive_losses.sigmoid_pairwise(chunked=False)

    def objective(params):
        return loss_fn(model.apply({"params": params}, _batch()), {})[0]

    grads = jax.grad(objective)(nn.unbox(variables["params"]))
    assert all(float(jnp.max(jnp.abs(g))) == 0.0 for g in jax.tree.leaves(grads["img"]))
    assert any(float(jnp.max(jnp.abs(g))) > 0.0 for g in jax.tree.leaves(grads["txt"]))


def test_two_tower_rejects_mismatched_widths():
    model = TwoTower(image=IMAGE, text=TEXT, out_dim=(None, 8))
    with pytest.raises(ValueError, match="out_dim"):
        model.init(jax.random.key(0), _batch())


@pytest.mark.parametrize("variant,released", [("B/16", 203e6), ("So400m/14", 877e6)])
def test_siglip_param_counts_match_released(variant, released):
    config = cli.load_config(f"projects/siglip/configs/webli_siglip.py:{variant}")
    cli.import_project(config)
    model = registry.MODELS.build(config.model.name, config_lib.kwargs_of(config.model),
                                  "config.model")
    batch = flops.abstract_example_batch(config.model_input)
    variables = jax.eval_shape(lambda b: model.init(jax.random.key(0), b), batch)
    count = flops.count_params(variables["params"])
    assert abs(count / released - 1) < 0.01, count


def test_byte_tokenizer_fixed_length_and_eos():
    tok = tokenizers.make_tokenizer("bytes")
    ids = tokenizers.tokenize_fixed(tok, "ab", 5, eos="sticky")
    np.testing.assert_array_equal(ids, [3 + 97, 3 + 98, 1, 1, 1])
    ids = tokenizers.tokenize_fixed(tok, "abcdef", 4, eos="sticky")
    assert ids[-1] == tok.eos_id and tok.decode(ids) == "abc"  # Cut so that EOS fits.
    ids = tokenizers.tokenize_fixed(tok, "ab", 4, eos="yes")
    np.testing.assert_array_equal(ids, [100, 101, 1, 0])
    assert tokenizers.tokenize_fixed(tok, "abcdef", 3, eos="no").tolist() == [100, 101, 102]
    assert tok.decode(tokenizers.tokenize_fixed(tok, "héllo", 10)) == "héllo"


def test_sentencepiece_model_and_tokenize_op(tmp_path):
    sentencepiece = pytest.importorskip("sentencepiece")
    corpus = tmp_path / "corpus.txt"
    words = ["red", "green", "blue", "circle", "square", "triangle", "cross", "a", "photo"]
    rng = np.random.default_rng(0)
    corpus.write_text("\n".join(" ".join(rng.choice(words, 5)) for _ in range(300)))
    prefix = tmp_path / "tiny"
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(prefix), vocab_size=24, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    model_path = f"{prefix}.model"
    tok = tokenizers.make_tokenizer(model_path)
    assert tok.vocab_size == 24 and tok.eos_id == 1
    ids = tokenizers.tokenize_fixed(tok, "a red circle", 24)
    assert ids.shape == (24,) and ids.dtype == np.int32 and ids[-1] == 1
    assert tok.decode(ids) == "a red circle"

    op = tokenizers.Tokenize(max_len=24, model=model_path, inkey="texts")
    assert registry.PREPROCESS_OPS.get("tokenize") is tokenizers.Tokenize
    op = pickle.loads(pickle.dumps(op))  # Runs in grain worker processes.
    out = op({"texts": np.frombuffer(b"a red circle", np.uint8)}, np.random.default_rng(0))
    np.testing.assert_array_equal(out["text"], ids)
    several = op({"texts": ["a red circle", "a blue cross"]}, np.random.default_rng(0))
    assert tok.decode(several["text"]) in ("a red circle", "a blue cross")
    with pytest.raises(FileNotFoundError, match="bytes"):
        tokenizers.make_tokenizer(str(tmp_path / "missing.model"))
    with pytest.raises(KeyError, match="inkey"):
        op({"caption": "x"}, np.random.default_rng(0))
