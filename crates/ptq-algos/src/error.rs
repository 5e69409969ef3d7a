/// Why a rewrite could not be made (a model it may leave alone is not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Graph(#[from] ptq_ir::Error),
}
