/*
 * bcryptprimitives.dll for Wine 8.0, which lacks it: the Go runtime (1.24
 * and later) takes its random bytes from bcryptprimitives!ProcessPrng and
 * refuses to start without it. Real Windows (8 and later) ships the DLL;
 * this shim exists only so the Wine test lane can run the agent, and is
 * never part of the MSI. It forwards to RtlGenRandom (advapi32's
 * SystemFunction036), which Wine implements over the host's random source.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
