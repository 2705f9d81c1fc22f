// Placeholder so the build's entry exists while the vercel adapter is written; replaced by it.
export {};
