import sys, torch, torch.nn.functional as F
from cnnlab.runs import load_run
torch.set_num_threads(2)
for rd in sys.argv[1:]:
    run = load_run(rd, data_dir="/work/data")
    m = run.model.eval().to(memory_format=torch.channels_last)
    test = run.splits.test
    x_u8, y = test.images, test.labels
    norm = run.normalizer
    def logits(fn):
        outs = []
        with torch.no_grad():
            for s in range(0, len(y), 1000):
                x = fn(norm(x_u8[s:s+1000])).contiguous(memory_format=torch.channels_last)
                outs.append(m(x).float())
        return torch.cat(outs)
    def shift(x, dx, dy):
        p = F.pad(x, (1, 1, 1, 1), mode="reflect")
        H, W = x.shape[-2:]
        return p[..., 1+dy:1+dy+H, 1+dx:1+dx+W]
    flip = lambda x: torch.flip(x, dims=[-1])
    L = {}
    L["id"] = logits(lambda x: x)
    L["fl"] = logits(flip)
    for d in [(-1,-1),(1,1),(-1,1),(1,-1)]:
        L[d] = logits(lambda x, d=d: shift(x,*d)); L[("f",)+d] = logits(lambda x, d=d: flip(shift(x,*d)))
    acc = lambda z: (z.argmax(1) == y).float().mean().item()
    P = {k: v.softmax(1) for k, v in L.items()}
    print(rd)
    print(" plain", acc(L["id"]), " flip probs", acc(P["id"]+P["fl"]), " flip logits", acc(L["id"]+L["fl"]))
    ab = 0.5*(L["id"]+L["fl"])/2*2 + 0.25*(L[(-1,-1)]+L[("f",-1,-1)]) + 0.25*(L[(1,1)]+L[("f",1,1)])
    print(" airbench lvl2 (logits .5/.25/.25)", acc(ab))
    six = sum(P[k] for k in ["id","fl",(-1,-1),("f",-1,-1),(1,1),("f",1,1)])
    print(" 6-view probs equal", acc(six))
    ten = sum(P.values())
    print(" 10-view probs equal", acc(ten))
