# SmoothQuant variants on minilm_l3, written as float ONNX models for `ptq quantize` to take
# (BENCHMARKS.md "SmoothQuant"): python smoothquant_variants.py ALPHA MODES OUT.onnx, MODES a
# comma list of
#   gelu    fold 1/s into the GELU's last Mul by 0.5 (exact; what `ptq quantize --smoothquant` does)
#   lnfold  fold 1/s into LayerNorm gamma/beta and put a Mul by s before the residual Add
#   lnmul   insert a Mul by 1/s after the LayerNorm, before the MatMuls only
#   mul     insert a Mul by 1/s before every other MatMul with constant weights
# Prints each activation rewritten and the float outputs' relative difference to the original.
import sys, numpy as np, onnx, onnxruntime as ort
from onnx import numpy_helper, helper
M=sys.argv[4] if len(sys.argv) > 4 else '../../shared/models/minilm_l3'
alpha=float(sys.argv[1]); modes=set(sys.argv[2].split(',')); out=sys.argv[3]
m=onnx.load(M+'/model.onnx'); g=m.graph
inits={i.name:i for i in g.initializer}
consts={}
for n in g.node:
    if n.op_type=='Constant': consts[n.output[0]]=n
def val(name):
    if name in inits: return numpy_helper.to_array(inits[name])
    if name in consts: return numpy_helper.to_array(consts[name].attribute[0].t)
    return None
cons={}
for n in g.node:
    for i in n.input: cons.setdefault(i,[]).append(n)
prod={o:n for n in g.node for o in n.output}
# candidates: X feeding MatMul with const W
cands={}
for n in g.node:
    if n.op_type=='MatMul' and val(n.input[1]) is not None:
        cands.setdefault(n.input[0],[]).append(n)
# observe per-channel max
import copy
mm=copy.deepcopy(m)
for x in cands: mm.graph.output.append(helper.make_tensor_value_info(x,onnx.TensorProto.FLOAT,None))
sess=ort.InferenceSession(mm.SerializeToString(),providers=['CPUExecutionProvider'])
mx={x:None for x in cands}
for line in open(M+'/calib.txt'):
    feeds={}
    for p in line.split():
        k,v=p.split(':=',1); feeds[k]=np.load(M+'/'+v)
    outs=sess.run(list(cands),feeds)
    for x,o in zip(cands,outs):
        a=np.abs(o).reshape(-1,o.shape[-1]).max(0)
        mx[x]=a if mx[x] is None else np.maximum(mx[x],a)
newnodes=[]; done=[]
for x,mms in cands.items():
    a=mx[x]; K=a.shape[0]
    ratio=a.max()/np.median(a)
    w=np.max([np.abs(val(n.input[1])).max(1) for n in mms],0)
    s=np.clip(a**alpha/np.maximum(w,1e-12)**(1-alpha),1e-5,1e5).astype(np.float32)
    p=prod[x]; others=[c for c in cons[x] if c not in mms]
    kind=None
    if p.op_type=='Mul' and val(p.input[1]) is not None and not others and 'gelu' in modes:
        c=val(p.input[1]); arr=(c/s).astype(np.float32)
        nm=p.input[1]+'_sq'; g.initializer.append(numpy_helper.from_array(arr,nm)); p.input[1]=nm; kind='gelu-fold'
    elif p.op_type=='LayerNormalization' and 'lnmul' in modes:
        nm=x+'_ptq_smooth'; cn=nm+'_scale'
        g.initializer.append(numpy_helper.from_array((1/s).astype(np.float32),cn))
        newnodes.append((p,helper.make_node('Mul',[x,cn],[nm],name=nm)))
        for n in mms: n.input[0]=nm
        kind='ln-mul'
    elif p.op_type=='LayerNormalization' and 'lnfold' in modes:
        for i in (1,2):
            nm=p.input[i]+'_sq'; g.initializer.append(numpy_helper.from_array((val(p.input[i])/s).astype(np.float32),nm)); p.input[i]=nm
        if others:
            nm=x+'_ptq_unsmooth'; cn=nm+'_scale'
            g.initializer.append(numpy_helper.from_array(s,cn))
            newnodes.append((p,helper.make_node('Mul',[x,cn],[nm],name=nm)))
            for n in others:
                for j,i in enumerate(n.input):
                    if i==x: n.input[j]=nm
        kind='ln-fold'
    elif 'mul' in modes and p.op_type!='LayerNormalization':
        nm=x+'_ptq_smooth'; cn=nm+'_scale'
        g.initializer.append(numpy_helper.from_array((1/s).astype(np.float32),cn))
        newnodes.append((p,helper.make_node('Mul',[x,cn],[nm],name=nm)))
        for n in mms: n.input[0]=nm
        kind='mul'
    if kind is None: continue
    for n in mms:
        W=val(n.input[1]); nm=n.input[1]+'_sq'
        g.initializer.append(numpy_helper.from_array((W*s[:,None]).astype(np.float32),nm)); n.input[1]=nm
    done.append(x)
    print(kind, x.replace('/model/model.0/auto_model/',''), 'ratio %.1f'%ratio, 's [%.3g, %.3g]'%(s.min(),s.max()), len(mms))
# insert new nodes after producers
nodes=list(g.node)
for p,nn in newnodes:
    nodes.insert(nodes.index(p)+1,nn)
del g.node[:]; g.node.extend(nodes)
onnx.save(m,out)
# float check
s0=ort.InferenceSession(M+'/model.onnx',providers=['CPUExecutionProvider']); s1=ort.InferenceSession(out,providers=['CPUExecutionProvider'])
line=open(M+'/calib.txt').readline(); feeds={p.split(':=')[0]:np.load(M+'/'+p.split(':=')[1]) for p in line.split()}
for a,b in zip(s0.run(None,feeds),s1.run(None,feeds)): print('float rel diff', np.abs(a-b).max()/np.abs(a).max())
