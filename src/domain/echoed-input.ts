// Inference servers echo what their callers sent into their own logs: vLLM's request logger prints each
// prompt (`Received request …: prompt: '…'` before 0.10, `Request … details: prompt: …` and `Request … JSON
// body: …` at DEBUG since), its sampling params with the caller's stop strings, and with
// --enable-log-outputs every generated text (`Generated response …: output: '…'`); SGLang's --log-requests
// prints `Receive: obj=GenerateReqInput(text='…')` and `Finish: obj=…, out=…`. A caller who sends a prompt
// containing "CUDA out of memory. Tried to allocate 20 GiB" or "Available KV cache memory: 500 GiB" must not
// be able to raise a symptom or skew a calibration, so everything from such a marker on is not read.
// Sources: vllm/entrypoints/logger.py (RequestLogger.log_inputs/log_outputs, 0.6 → 0.2x),
// sglang/srt/managers/tokenizer_manager.py (log_requests).

const ECHO =
  /\b(?:Received request|Generated response|Added request|Aborted request|Finished request)\b|\bRequest \S+ (?:details|JSON body):|\bReceive: obj=|\bFinish: obj=|\b(?:prompt|prompt_token_ids|output|inputs?): ['"[]/;

/** The part of a log line the server wrote itself: the line up to the first echo of a caller's input. */
export function withoutEchoedInput(line: string): string {
  const m = ECHO.exec(line);
  return m === null ? line : line.slice(0, m.index);
}
