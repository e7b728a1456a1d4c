"""The values a config choice may take, declared once: the schema (``experiment.config``)
checks a config against them without importing the components, and each component imports
its own from here. Light: no imports.
"""

ON_ERROR = ("stop", "skip")  # data.on_error (data.builders)
DATA_SOURCES = ("auto", "tfds", "files")  # data.source (data.loading)
EVIDENCE_ACTIVATIONS = ("softplus", "relu", "exp")  # model.evidence (fusion.dirichlet)
DTYPES = ("float32", "bfloat16")  # model.dtype: what large encoders compute in
POOLINGS = ("cls", "mean")  # model.bert.pooling (models.bert)
OPTIMIZERS = ("adamw", "adam")  # train.optimizer; "adam" is PyTorch's (L2 in the gradient)
CONTRIBUTIONS = ("top1_gap", "shapley")  # modality.contribution (modality.weights)
FAVOUR = ("stronger", "weaker")  # modality.favour (modality.weights)
ORACLES = ("dataset", "person")  # al.oracle (person.files)
GREEDY_ORACLE = "greedy_oracle"  # the al.strategy of experiment.headroom
GREEDY_ORACLE_SOURCES = ("candidates", "pool")  # al.greedy_oracle.source
STOP_WHEN = ("", "stabilized", "plateau", "either")  # al.stop_when (experiment.stopping)
PROGRESS = ("auto", "on", "off")  # eval.progress (experiment.progress)
REWARDS = ("relative", "incremental", "absolute")  # al.rlmba.reward (policy.agent)
POLICY_INPUTS = ("per_modality", "invariant")  # al.rlmba.policy_inputs (policy.inputs)
DIVERSITIES = ("centroid", "labelled")  # al.rlmba.diversity (selection.rlmba)
GCN_METHODS = ("coregcn", "uncertaingcn")  # al.gcnal.method (selection.gcn)
