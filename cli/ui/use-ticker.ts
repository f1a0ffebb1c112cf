import { useEffect, useState } from "react";

/** A frame counter that advances every `ms` while `active`; one timer drives every spinner in the view. */
export function useTicker(active: boolean, ms = 80): number {
  const [frame, setFrame] = useState(0);
  useEffect(() => {
    if (!active) return;
    const t = setInterval(() => setFrame((f) => f + 1), ms);
    return () => clearInterval(t);
  }, [active, ms]);
  return frame;
}
