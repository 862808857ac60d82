/* A UEFI application for the OVMF boot test, built with Debian's gnu-efi:
 * it prints a line through the firmware's console (our COM1) and powers the
 * machine off through the firmware's ResetSystem. */
#include <efi.h>
#include <efilib.h>

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE* system_table) {
  InitializeLib(image, system_table);
  Print(L"cellvisor-uefi: hello from a UEFI application\n");
  uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
  return EFI_SUCCESS;
}
