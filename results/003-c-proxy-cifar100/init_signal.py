# Signal and gradient sizes through AlexNet@32 at initialisation, on 256 real CIFAR-100 images /255.
# usage: python init_signal.py DIR/cifar-100-python   (the publisher's folder; unpack.py cifar100 DIR)
import pickle, sys, torch, torch.nn.functional as F
from cnnlab.models import create_model
from cnnlab.models.init import init_weights
torch.set_num_threads(1)
d = pickle.load(open(f"{sys.argv[1]}/train", "rb"), encoding="bytes")
x = torch.tensor(d[b"data"][:256].reshape(-1, 3, 32, 32), dtype=torch.float32) / 255
y = torch.tensor(d[b"fine_labels"][:256])
for scheme in ("glorot", "he", "default"):
    torch.manual_seed(0)
    m = init_weights(create_model("alexnet", num_classes=100), scheme).train()
    acts = {}
    hooks = [mod.register_forward_hook(lambda mod, i, o, n=n: acts.__setitem__(n, o.detach().std().item()))
             for n, mod in m.named_modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    logits = m(x); loss = F.cross_entropy(logits, y); loss.backward()
    gr = {n: p.grad.norm().item() / p.norm().item() for n, p in m.named_parameters() if n.endswith("weight")}
    print(f"{scheme:8s} loss {loss.item():.3f} logit std {logits.std().item():.4f}")
    print("   act std  ", " ".join(f"{n}:{v:.3g}" for n, v in acts.items()))
    print("   |g|/|w|  ", " ".join(f"{n.replace('.weight','')}:{v:.2g}" for n, v in gr.items()))
