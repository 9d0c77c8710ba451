// workerpool worker: the seed's benchmark loop, the same sum as corepool's /compute.
const workerpool = require('workerpool');

function sum(n) {
  let s = 0;
  for (let i = 0; i < n; i++) s += i;
  return s;
}

workerpool.worker({ sum });
